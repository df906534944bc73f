"""The fleet playbook (deploy/fleet): `ansible-playbook --syntax-check`, then real runs
against localhost (local connection) into a temporary prefix: install from a wheel, the
config rendered from inventory variables and validated, a model pushed as a release folder
with an atomic `current` swap, `trapcount doctor` after; a second push of another model
swaps it without reinstalling or rewriting the config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.staging import REPO, base_python, build_wheel, seed_venv, tool
from tests.helpers.media import crossings_video, tiny_model_dir
from tests.helpers.schema import HEAD

FLEET = REPO / "deploy" / "fleet"


@pytest.fixture(scope="module")
def ansible_playbook() -> str:
    found = tool("ansible-playbook")
    if found is None:
        pytest.skip("ansible-core is not installed (pip install -e '.[dev]')")
    return found


def playbook(ansible: str, *args: str, cwd: Path, timeout: float = 300):
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(cwd / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(cwd / "ansible-remote"),
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
        ANSIBLE_CONFIG=str(FLEET / "ansible.cfg"),
    )
    return subprocess.run(
        [ansible, *args],
        cwd=FLEET,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP numbers of the single host."""
    line = next(line for line in output.splitlines() if line.startswith("trap-local "))
    return {key: int(value) for key, value in (pair.split("=") for pair in line.split()[2:])}


def test_syntax_check(ansible_playbook, tmp_path):
    result = playbook(
        ansible_playbook,
        "--syntax-check",
        "-i",
        str(FLEET / "inventory.example.yml"),
        str(FLEET / "site.yml"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: " in result.stdout


@pytest.mark.slow
def test_the_playbook_installs_configures_and_pushes_models_locally(
    ansible_playbook, tmp_path, request
):
    model_a = tiny_model_dir(request.config, seed=0)
    model_b = tiny_model_dir(request.config, seed=1)
    clip = crossings_video(tmp_path / "clip.mp4", [("deer", 1, 1.0, 3.0)], duration_s=5.0)
    wheel = build_wheel(tmp_path / "dist", tmp_path / "source")
    prefix = tmp_path / "trap"
    seed_venv(prefix)  # see tests/deploy/staging.py: the dependencies are already there

    inventory = tmp_path / "inventory.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "trapcount_trap": {"id": "fleet-local", "location_name": "Test bench"},
        "trapcount_host_settings": {"source": {"uri": str(clip.path)}},
    }
    group = {
        "trapcount_prefix": str(prefix),
        "trapcount_wheel": str(wheel),
        "trapcount_systemd": False,
        "trapcount_install_args": ["--offline", "--python", base_python()],
        "trapcount_settings": {
            "storage": {"min_free_mb": 1},
            "sync": {"url": "postgresql+psycopg://trap@fleet.invalid/trapcount"},
        },
        "trapcount_password": "pw-from-the-vault",
    }
    inventory.write_text(
        json.dumps({"traps": {"vars": group, "hosts": {"trap-local": host}}}, indent=2)
    )

    first = playbook(
        ansible_playbook,
        "-i",
        str(inventory),
        "site.yml",
        "-e",
        json.dumps({"trapcount_model": str(model_a)}),
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert recap(first.stdout)["failed"] == 0

    venv = prefix / "opt/trapcount/venv"
    config_path = prefix / "etc/trapcount/trap.toml"
    models = prefix / "var/lib/trapcount/models"
    assert (venv / "bin/trapcount").exists()
    config = tomllib.loads(config_path.read_text())
    assert config["trap"] == {"id": "fleet-local", "location_name": "Test bench"}
    assert config["source"]["uri"] == str(clip.path)
    assert config["storage"]["db_path"] == str(prefix / "var/lib/trapcount/trapcount.sqlite")
    assert config["classifier"]["model_dir"] == str(models / "current")
    assert config["sync"]["password_file"] == str(prefix / "etc/trapcount/sync.password")
    assert (prefix / "etc/trapcount/sync.password").read_text() == "pw-from-the-vault\n"
    assert "pw-from-the-vault" not in first.stdout + first.stderr  # no_log
    sha_a = json.loads((model_a / "model.json").read_text())["sha256"]
    assert os.readlink(models / "current") == sha_a[:12]
    assert "trapcount doctor" in first.stdout and f"schema {HEAD}" in first.stdout

    # The next push: another model. No reinstall, no config change; the symlink swapped.
    second = playbook(
        ansible_playbook,
        "-i",
        str(inventory),
        "site.yml",
        "-e",
        json.dumps({"trapcount_model": str(model_b)}),
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    sha_b = json.loads((model_b / "model.json").read_text())["sha256"]
    assert os.readlink(models / "current") == sha_b[:12]
    assert sorted(p.name for p in models.iterdir()) == sorted(["current", sha_a[:12], sha_b[:12]])
    assert (models / "current" / "model.json").read_text() == (model_b / "model.json").read_text()
    assert re.search(
        r"Install or upgrade trapcount \(deploy/install.sh\)\] \*+\nskipping", second.stdout
    )
    # Changed: the release folder moved in place and the symlink swap; nothing else.
    assert recap(second.stdout)["changed"] == 4, second.stdout[-6000:]
    assert tomllib.loads(config_path.read_text()) == config

    # A model with a grey companion: both networks pushed, the folder named by the pair.
    from edge_agent.manifest import GREY_FILENAME, read_manifest
    from trainer.pair import pair_models

    paired = pair_models(model_a, model_b, tmp_path / "paired")
    third = playbook(
        ansible_playbook,
        "-i",
        str(inventory),
        "site.yml",
        "-e",
        json.dumps({"trapcount_model": str(tmp_path / "paired")}),
        cwd=tmp_path,
    )
    assert third.returncode == 0, third.stdout[-6000:] + third.stderr[-3000:]
    assert (
        os.readlink(models / "current")
        == paired.version
        == read_manifest(models / "current").version
    )
    for name in ("model.json", "model.tflite", GREY_FILENAME):
        assert (models / "current" / name).read_bytes() == (tmp_path / "paired" / name).read_bytes()
