"""deploy/pi-check.sh (`make pi-check`) without emulation: the script is shellcheck-clean and
answers --help and a wrong option without root or a root filesystem; its Python half
(deploy/pi_check.py) makes a config the agent accepts and compares two sides' counts. The
check itself takes minutes and stays out of `make test` (docs/deploy.md, "Checking arm64")."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from edge_agent.config import load_config
from edge_agent.demo.sample import DEMO_CONFIG
from tests.deploy.staging import REPO

PI_CHECK_SH = REPO / "deploy" / "pi-check.sh"
PI_CHECK_PY = REPO / "deploy" / "pi_check.py"


def load_helper():
    spec = importlib.util.spec_from_file_location("pi_check", PI_CHECK_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pi_check = load_helper()


def test_shellcheck_is_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(PI_CHECK_SH)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_help_and_a_wrong_option_need_no_root():
    result = subprocess.run([str(PI_CHECK_SH), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--fresh" in result.stdout and "cortex-a72" in result.stdout
    result = subprocess.run([str(PI_CHECK_SH), "--nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["pi-check: unknown option --nope (see --help)"]


def test_the_makefile_target_is_not_part_of_make_test():
    makefile = (REPO / "Makefile").read_text()
    assert "\npi-check: venv\n\tdeploy/pi-check.sh" in makefile
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pi-check" not in test_recipe


def test_the_config_is_the_demos_with_the_clip_model_and_database_beside_it(tmp_path):
    text = pi_check.set_keys(DEMO_CONFIG)
    config = tmp_path / "pi-check.toml"
    config.write_text(text)
    settings = load_config(config)
    beside = tmp_path.resolve()
    assert settings.resolve(settings.source.uri) == beside / "sample.mp4"
    assert settings.resolve(settings.classifier.model_dir) == beside / "model"
    assert settings.resolve(settings.storage.db_path) == beside / "counts.sqlite"
    # The demo's own settings are kept.
    demo = tmp_path / "demo.toml"
    demo.write_text(DEMO_CONFIG)
    assert settings.classifier.confidence_threshold == (
        load_config(demo).classifier.confidence_threshold
    )
    assert settings.events.event_gap_s == load_config(demo).events.event_gap_s
    assert text.startswith(DEMO_CONFIG.rstrip("\n").split("[classifier]")[0])


def test_set_keys_replaces_a_key_and_keeps_comments():
    text = '# a trap\n[source]\n# the camera\nuri = "0"  # usb\n\n[storage]\nkeep = 1\n'
    out = pi_check.set_keys(text)
    assert out.count("uri = ") == 1 and 'uri = "sample.mp4"' in out
    assert "# the camera" in out and "# a trap" in out
    storage = out.split("[storage]", 1)[1].split("[", 1)[0]
    assert "keep = 1" in storage and 'db_path = "counts.sqlite"' in storage
    assert '[classifier]\nmodel_dir = "model"' in out


def report(labels: dict[str, tuple[int, int, int]], start: str = "12:00:02") -> dict:
    return {
        "labels": {
            label: {"events": e, "count": c, "max_n": m, "confidence": 0.9}
            for label, (e, c, m) in labels.items()
        },
        "events": [
            {"start": f"2024-06-01T{start}", "end": "x", "label": label, "max_n": m, "tracks": m}
            for label, (_, _, m) in labels.items()
        ],
        "models": [{"sha256": "0a2c"}],
        "unprocessed": [],
    }


DEMO_COUNTS = {"bird": (1, 3, 3), "deer": (1, 1, 1), "horse": (1, 2, 2)}


def test_equal_counts_side_by_side():
    equal, lines = pi_check.compare(
        report(DEMO_COUNTS), report(DEMO_COUNTS), ("x86_64", "arm64"),
        {"machine": "x86_64", "numpy": "2.4.6"}, {"machine": "aarch64", "numpy": "2.4.6"},
    )  # fmt: skip
    assert equal
    text = "\n".join(lines)
    assert "machine" in text and "aarch64" in text
    assert any(line.split() == ["bird", "1", "3", "3", "1", "3", "3", "same"] for line in lines)
    assert any(line.split() == ["total", "6", "6"] for line in lines)
    assert lines[-1] == "counts: equal"


def test_a_different_count_or_a_missing_label_fails():
    other = dict(DEMO_COUNTS, bird=(1, 2, 2))
    equal, lines = pi_check.compare(report(DEMO_COUNTS), report(other), ("x86_64", "arm64"))
    assert not equal
    assert any(line.startswith("bird") and line.endswith("DIFFERENT") for line in lines)
    assert lines[-1] == "counts: DIFFERENT between x86_64 and arm64"

    fewer = {k: v for k, v in DEMO_COUNTS.items() if k != "deer"}
    equal, lines = pi_check.compare(report(DEMO_COUNTS), report(fewer), ("x86_64", "arm64"))
    assert not equal
    deer = ["deer", "1", "1", "1", "0", "0", "0", "DIFFERENT"]
    assert any(line.split() == deer for line in lines)


def test_other_differences_are_noted_but_only_counts_decide():
    equal, lines = pi_check.compare(
        report(DEMO_COUNTS), report(DEMO_COUNTS, start="12:00:03"), ("x86_64", "arm64")
    )
    assert equal
    assert "note: the events differ (start, end, label, MaxN or tracks)" in lines


def test_compare_command_exit_status(tmp_path):
    for name, counts in (("a", DEMO_COUNTS), ("b", DEMO_COUNTS), ("c", {"bird": (1, 3, 3)})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report(counts)))
    run = [sys.executable, str(PI_CHECK_PY), "compare"]
    same = subprocess.run([*run, tmp_path / "a", tmp_path / "b"], capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    differ = subprocess.run([*run, tmp_path / "a", tmp_path / "c"], capture_output=True, text=True)
    assert differ.returncode == 1
    assert differ.stdout.strip().endswith("counts: DIFFERENT between x86_64 and arm64")


def test_versions_names_the_machine_and_the_packages():
    found = pi_check.versions()
    assert set(pi_check.PACKAGES) <= set(found)
    assert found["python"].startswith("3.")
    assert found["numpy"] != "-"
