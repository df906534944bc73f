"""Staged installs for the deploy tests: fast, offline, real.

``deploy/install.sh --prefix DIR`` installs for real: it builds trapcount from the
checkout (or takes a wheel) and pip-installs it into ``DIR/opt/trapcount/venv``. On a trap
pip also fetches the dependencies (numpy, OpenCV, LiteRT, ...); a test must not download
them, so the test prepares the venv first, as a previous install would have left it: made
by ``python -m venv --system-site-packages`` from the interpreter the tests run on, with a
``.pth`` line that makes the dependencies already installed in the test environment
importable. install.sh then reuses that venv (a rerun upgrades in place) and runs with
``--offline`` (pip --no-index --no-build-isolation): pip finds every dependency satisfied
and installs only trapcount itself, into the venv, from the checkout or wheel it was given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO / "deploy" / "install.sh"


def base_python() -> str:
    """The interpreter under the test environment (a venv's base), for --python."""
    return getattr(sys, "_base_executable", None) or sys.executable


def seed_venv(prefix: Path) -> Path:
    """``PREFIX/opt/trapcount/venv`` that sees the test environment's packages."""
    venv = prefix / "opt" / "trapcount" / "venv"
    subprocess.run(
        [base_python(), "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # pip comes from the test environment too (the venv was made without one).
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def install(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        ["bash", str(INSTALL_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
    )


def clean_copy(dest: Path) -> Path:
    """The checkout's files (tracked and not ignored), as install.sh copies them."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def build_wheel(out: Path, work: Path) -> Path:
    """A trapcount wheel built offline from a clean copy of the checkout."""
    source = clean_copy(work)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("trapcount-*.whl")
    return wheel


def tool(name: str) -> str | None:
    """An executable from PATH or beside the test interpreter (ansible in the venv)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)
