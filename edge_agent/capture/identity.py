"""What identifies a recording or a photo across reruns, copies and renames (stored as
``events.source_key``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

# A file's identity hashes its size and this much of its start and of its end.
IDENTITY_SAMPLE_BYTES = 1 << 20


def content_identity(data: bytes) -> str:
    """The identity of a file's content (``file_identity``) from its bytes in memory."""
    head = data[:IDENTITY_SAMPLE_BYTES]
    tail = data[-IDENTITY_SAMPLE_BYTES:] if len(data) > IDENTITY_SAMPLE_BYTES else b""
    return _identity(len(data), head, tail)


def file_identity(path: Path) -> str:
    """What identifies a recording or a photo across reruns, copies and renames: a hash of
    its size, its first and its last MiB. Two clips copied off one SD card share their file
    times but not their content; the same clip copied elsewhere is the same footage."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        head = handle.read(IDENTITY_SAMPLE_BYTES)
        tail = b""
        if size > IDENTITY_SAMPLE_BYTES:
            handle.seek(max(IDENTITY_SAMPLE_BYTES, size - IDENTITY_SAMPLE_BYTES))
            tail = handle.read()
    return _identity(size, head, tail)


def _identity(size: int, head: bytes, tail: bytes) -> str:
    digest = hashlib.sha256(size.to_bytes(8, "big"))
    digest.update(head)
    digest.update(tail)
    return "sha256:" + digest.hexdigest()[:40]
