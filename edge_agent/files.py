"""Files nobody else may read: camera-trap media can show people, and a trap's database
shows where rare animals are. Folders are made 0700, files 0600 from the start (never
world-readable, even for a moment)."""

from __future__ import annotations

import os
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """``path`` and its missing parents, created 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file created 0600 (never world-readable, even briefly)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
