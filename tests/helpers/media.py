"""Small real inputs for the tests: generated videos, model folders, configs, subprocesses.

Videos come from ``edge_agent.demo.scenes`` (noisy textured background, procedural animals of
known classes on known paths), written with OpenCV; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.demo.scenes import Scene, crossing, lingering
from edge_agent.demo.writers import write_video
from tests.helpers import tiny_model

REPO = Path(__file__).resolve().parents[2]
START = datetime(2024, 6, 1, 4, 0, 0, tzinfo=UTC)


def model_cache_root(config: Any | None = None) -> Path:
    """Where tiny models are cached between test sessions (pytest's cache, else /tmp)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("trapcount-tiny-models"))
    root = Path(tempfile.gettempdir()) / f"trapcount-tiny-models-{os.getuid()}"
    root.mkdir(exist_ok=True)
    return root


def copy_model(source: Path, dest: Path) -> Path:
    """A private copy of a cached model folder (tests replace files inside it)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.tflite", "model.json"):
        shutil.copy2(source / name, dest / name)
    return dest


def replace_model(source: Path, dest: Path) -> None:
    """Install a model the way a deployer should: each file written aside, then renamed."""
    for name in ("model.json", "model.tflite"):
        tmp = dest / f".{name}.new"
        shutil.copyfile(source / name, tmp)
        os.replace(tmp, dest / name)


def crossings_video(
    path: Path,
    plan: list[tuple[str, int, float, float]],
    *,
    duration_s: float,
    fps: float = 10.0,
    seed: int = 0,
    event_gap_s: float = 5.0,
    width: int = 320,
    height: int = 240,
):
    """A clip where, for each (label, k, start_s, cross_s), k animals cross together."""
    walks = []
    for i, (label, k, start_s, cross_s) in enumerate(plan):
        walks += crossing(label, start_s, cross_s, k=k, seed=10 * i, direction=1 if i % 2 else -1)
    scene = Scene(
        width=width, height=height, fps=fps, duration_s=duration_s, walks=walks, seed=seed
    )
    return write_video(scene, path, event_gap_s=event_gap_s, start_time=START)


def lingering_video(path: Path, *, label: str = "deer", duration_s: float = 30.0, fps=8.0):
    """One animal that walks in after a second and stays until the clip ends."""
    walk = lingering(label, 1.0, duration_s, walk_s=2.0, wander=0.01)
    scene = Scene(fps=fps, duration_s=duration_s, walks=[walk], seed=3)
    return write_video(scene, path, event_gap_s=5.0, start_time=START)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML config from plain values (strings, numbers, booleans, lists)."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# -- subprocesses -------------------------------------------------------------------------


def trapcount_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.cli", *map(str, args)]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", TRAPCOUNT_LOG_FORMAT="plain", **extra)
    env.pop("TRAPCOUNT_DEBUG", None)
    return env


def run_trapcount(*args: str, cwd: Path, timeout: float = 120, **env: str):
    return subprocess.run(
        trapcount_command(*args),
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_trapcount(*args: str, cwd: Path, log: Path, **env: str) -> subprocess.Popen:
    """Start ``trapcount ...`` with stdout+stderr going to ``log`` (readable while it runs)."""
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            trapcount_command(*args),
            cwd=cwd,
            env=subprocess_env(**env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        handle.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, proc=None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
    """Send ``sig``, wait for the exit; return the seconds it took."""
    began = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return time.monotonic() - began


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    """Read the database with plain sqlite3 (a second, independent reader)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        connection.close()


def event_count(db: Path) -> int:
    """Events in ``db`` so far (0 while the file or its tables do not exist yet)."""
    if not db.exists():
        return 0
    rows = query(db, "SELECT count(*) FROM events")
    return rows[0][0] if rows else 0


def tiny_model_dir(config: Any | None, seed: int = 0) -> Path:
    """A real tiny int8 model (built once per seed with TensorFlow, then cached)."""
    import importlib.util

    cached = tiny_model.cached_dir(model_cache_root(config), seed)
    if cached is None and importlib.util.find_spec("tensorflow") is None:
        import pytest

        pytest.skip("building the test model needs TensorFlow (pip install -e '.[train]')")
    return tiny_model.model_dir(model_cache_root(config), seed)


def write_huge_png(path: Path, width: int, height: int) -> Path:
    """A real, valid black RGB PNG of ``width`` x ``height``, written row by row through
    zlib (a 20000x20000 one is 1.2 GB of pixels but about 1 MB on disk): the photo that
    ends a run on a 2 GB Pi when it is decoded whole."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)  # filter byte + RGB
    parts = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path
