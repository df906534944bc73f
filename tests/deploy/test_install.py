"""deploy/install.sh for real into a temporary prefix, then the installed `trapcount doctor`
and `trapcount process`; a rerun upgrades and keeps the config; the systemd unit passes
`systemd-analyze verify`; shellcheck is clean. See tests/deploy/staging.py for how the
install stays fast and offline."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.staging import INSTALL_SH, REPO, base_python, install, seed_venv
from tests.helpers.media import crossings_video, tiny_model_dir
from tests.helpers.schema import HEAD

UNIT = REPO / "deploy" / "trapcount.service"


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("install-clip")
    plan = [("deer", 1, 1.0, 3.0), ("fox", 2, 7.0, 3.0)]
    return crossings_video(folder / "clip.mp4", plan, duration_s=12.0, event_gap_s=2.0)


@pytest.fixture(scope="module")
def staged(tmp_path_factory, model):
    """A first install into a fresh prefix, with --no-systemd."""
    prefix = tmp_path_factory.mktemp("prefix")
    seed_venv(prefix)
    result = install(
        "--prefix", str(prefix), "--no-systemd", "--offline", "--python", base_python(),
        "--model", str(model),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix, result


def paths(prefix: Path) -> dict[str, Path]:
    return {
        "trapcount": prefix / "opt/trapcount/venv/bin/trapcount",
        "python": prefix / "opt/trapcount/venv/bin/python",
        "config": prefix / "etc/trapcount/trap.toml",
        "data": prefix / "var/lib/trapcount",
        "models": prefix / "var/lib/trapcount/models",
        "unit": prefix / "etc/systemd/system/trapcount.service",
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def configure_for_the_clip(config: Path, clip: Path) -> None:
    """What a deployer edits after the install: the trap's id and its camera."""
    text = config.read_text()
    text = text.replace('id = "trap-01"', 'id = "staged-trap"', 1)
    text = text.replace('uri = "0"', f'uri = "{clip}"', 1)
    text = text.replace("min_free_mb = 200", "min_free_mb = 1", 1)
    text = text.replace("event_gap_s = 60.0", "event_gap_s = 2.0", 1)
    config.write_text(text + "# edited on site\n")


def test_shellcheck_is_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = [INSTALL_SH, REPO / ".ci" / "start-postgres", REPO / ".ci" / "run"]
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    prefix = tmp_path / "stage"
    result = install("--prefix", str(prefix), "--dry-run", "--python", base_python())
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing is changed" in result.stdout
    assert f"-m venv --system-site-packages {prefix}/opt/trapcount/venv" in result.stdout
    assert f"+ write {prefix}/etc/trapcount/trap.toml (mode 0640)" in result.stdout
    assert f"+ write {prefix}/etc/systemd/system/trapcount.service" in result.stdout
    assert not prefix.exists()


def test_bad_options_are_one_line_errors(tmp_path):
    for args, message in [
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--source", str(tmp_path)], "neither a .whl file nor a trapcount checkout"),
        (["--model", str(tmp_path), "--prefix", str(tmp_path / "p")], "no model.tflite"),
        (["--picamera2", "maybe"], "--picamera2 is auto, yes or no"),
    ]:
        result = install(*args, "--dry-run")
        assert result.returncode == 1
        assert result.stderr.strip() == f"install.sh: {message}" or message in result.stderr


def test_the_install_lays_out_the_prefix(staged, model):
    prefix, result = staged
    p = paths(prefix)
    assert "installing trapcount into" in result.stdout
    assert "trapcount, version" in result.stdout
    assert p["trapcount"].exists() and not p["unit"].exists()  # --no-systemd
    assert mode(p["config"]) == 0o640 and mode(p["data"]) == 0o750
    text = p["config"].read_text()
    assert f'db_path = "{p["data"]}/trapcount.sqlite"' in text
    assert f'model_dir = "{p["models"]}/current"' in text
    current = p["models"] / "current"
    assert current.is_symlink() and re.fullmatch(r"[0-9a-f]{12}", str(current.readlink()))
    assert (current / "model.tflite").read_bytes() == (model / "model.tflite").read_bytes()
    assert (current / "model.json").read_bytes() == (model / "model.json").read_bytes()
    # The installed package is the one in the prefix, not the checkout's.
    where = subprocess.run(
        [str(p["python"]), "-c", "import edge_agent; print(edge_agent.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert where.stdout.startswith(str(prefix / "opt/trapcount/venv/lib/"))


def test_the_installed_doctor_and_process_run_from_the_prefix(staged, clip, tmp_path):
    prefix, _ = staged
    p = paths(prefix)
    configure_for_the_clip(p["config"], clip.path)
    doctor = subprocess.run(
        [str(p["trapcount"]), "doctor", "--config", str(p["config"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert re.search(r"^model\s+ok\s", doctor.stdout, re.M)
    assert re.search(rf"^database\s+ok\s.*schema {HEAD}", doctor.stdout, re.M)

    process = subprocess.run(
        [str(p["trapcount"]), "process", str(clip.path), "--config", str(p["config"]), "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "trap staged-trap" in process.stdout
    assert f"database {p['data']}/trapcount.sqlite" in process.stdout
    assert re.search(r"^(deer|fox)\s+\d+\s+\d+\s+\d+$", process.stdout, re.M), process.stdout


def test_a_rerun_upgrades_keeps_the_config_and_installs_the_unit(staged):
    prefix, _ = staged
    p = paths(prefix)
    before = p["config"].read_text()
    (package,) = prefix.glob("opt/trapcount/venv/lib/python3*/site-packages/edge_agent")
    installed_at = (package / "__init__.py").stat().st_mtime_ns
    result = install("--prefix", str(prefix), "--offline", "--python", base_python())
    assert result.returncode == 0, result.stdout + result.stderr
    # The same version again is still installed again (a rebuilt checkout replaces it).
    assert (package / "__init__.py").stat().st_mtime_ns > installed_at
    assert "upgrading trapcount" in result.stdout
    assert "reused" in result.stdout and "config " in result.stdout and " kept" in result.stdout
    assert "model kept" in result.stdout
    assert p["config"].read_text() == before  # the site's edits survive
    assert (prefix / "etc/trapcount/trap.example.toml").exists()

    unit = p["unit"].read_text()
    assert f"ExecStart={p['trapcount']} run --config {p['config']}" in unit
    assert f"ReadWritePaths={p['data']}\n" in unit
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(p["unit"])], capture_output=True, text=True
    )
    # verify reports unknown keys and bad values as warnings with exit status 0.
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stderr


def test_the_shipped_unit_is_hardened_and_supervised():
    unit = UNIT.read_text()
    settings = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ReadWritePaths": ["/var/lib/trapcount"],  # the data folder and nothing else
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "User": ["trapcount"],
        "SupplementaryGroups": ["video"],
        "StandardError": ["journal"],
        "ExecStart": ["/opt/trapcount/venv/bin/trapcount run --config /etc/trapcount/trap.toml"],
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert int(settings["WatchdogSec"][0]) >= 120  # > 2 heartbeats of the default 60 s
    assert "char-video4linux rw" in settings["DeviceAllow"]


def test_a_model_with_a_grey_companion_is_installed_whole(staged, model, request, tmp_path):
    """The companion named in model.json goes with the model, and the release folder is
    named by the pair's version, so a new companion alone is a new release."""
    from edge_agent.manifest import GREY_FILENAME, read_manifest
    from trainer.pair import pair_models

    prefix, _ = staged
    p = paths(prefix)
    paired = tmp_path / "paired"
    pair_models(model, tiny_model_dir(request.config, seed=1), paired)
    version = read_manifest(paired).version
    assert version != read_manifest(model).version
    result = install(
        "--prefix", str(prefix), "--no-systemd", "--offline", "--python", base_python(),
        "--model", str(paired),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"current model: {version}" in result.stdout
    current = p["models"] / "current"
    assert current.resolve().name == version
    for name in ("model.json", "model.tflite", GREY_FILENAME):
        assert (current / name).read_bytes() == (paired / name).read_bytes(), name
    doctor = subprocess.run(
        [str(p["trapcount"]), "doctor", "--config", str(p["config"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert re.search(rf"^model\s+ok\s.*{version}.*grey companion", doctor.stdout, re.M), (
        doctor.stdout
    )

    (paired / GREY_FILENAME).unlink()
    result = install(
        "--prefix", str(prefix), "--no-systemd", "--offline", "--python", base_python(),
        "--model", str(paired),
    )  # fmt: skip
    assert result.returncode != 0
    assert f"has no {GREY_FILENAME} (named by model.json)" in result.stderr
    assert current.resolve().name == version  # the installed model is kept
