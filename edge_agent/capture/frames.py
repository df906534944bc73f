"""What every frame source is: ``FrameSource`` yields ``Frame(timestamp, image)``, a UTC-aware
timestamp and a BGR image; it is a context manager whose ``close()`` is safe to call twice,
and it tells which file each frame came from (``origin_of``), for rerun identity, and an
image folder which photo the frame just yielded is (``current_file``, its path relative to
the folder: where a detector's boxes and the stored boxes name it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np


class SourceError(RuntimeError):
    """A source that cannot be used at all (missing file, missing library); one line."""


class Frame(NamedTuple):
    timestamp: datetime
    image: np.ndarray


class VideoCaptureLike(Protocol):
    """What a source needs of ``cv2.VideoCapture`` (tests and adapters may pass others)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[], VideoCaptureLike]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


class FrameSource:
    """Iterates ``Frame(timestamp, image)``; a context manager; ``close()`` twice is fine."""

    kind = "source"
    live = False

    def __init__(self, description: str, stop_event: threading.Event | None = None) -> None:
        self.description = description
        self.frames_read = 0
        # The photo the frame last yielded came from, relative to the folder read (an image
        # folder sets it before each frame); None for a clip or a camera.
        self.current_file: str | None = None
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _stopped(self) -> bool:
        return self._closed or self._stop.is_set()

    def origin_of(self, timestamp: datetime) -> str | None:
        """The identity (``file_identity``) of the file the frame stamped ``timestamp`` came
        from; None for a live camera, whose footage is never read twice."""
        return None

    @property
    def origins_read(self) -> set[str]:
        """The identities of the files read so far (a rerun replaces their events)."""
        return set()

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise SourceError(f"{self.description} is closed")
        return self._frames()

    def _frames(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        """Free the device or file; called once, from ``close()``."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def files_under(folder: str | Path, suffixes: Set[str]) -> list[Path]:
    """The files under ``folder`` (recursively) whose suffix, in lower case, is one of
    ``suffixes``, by path: a card's photos (``folder.photos_in``) or clips
    (``video.videos_in``)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
