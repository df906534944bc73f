"""Video files, read to their end and stamped with *media time* (``start + index / fps``),
never the wall clock: processing a file faster (or slower) than real time gives exactly the
counts a live camera would have given.

``start`` is the ``start_time`` argument (the CLI's ``--start``); without it, the file's
modification time minus the clip's duration, because a recorder writes the file until the
clip ends, so its mtime is (about) the time of the last frame. A header that states no
frame rate, or one under ``config.MIN_FPS`` (broken), is read at ``ASSUMED_FPS`` with a
warning. A file that stops decoding before the frame count its header announces is
truncated: the source logs a warning and ends cleanly with the frames it could read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

from edge_agent.capture.frames import Frame, FrameSource, SourceError, VideoCaptureLike, _utc
from edge_agent.capture.identity import file_identity
from edge_agent.config import MIN_FPS

log = logging.getLogger(__name__)

# The rate a video is read at when its header states none, or an implausible one.
ASSUMED_FPS = 10.0


class VideoFileSource(FrameSource):
    """A video file read to its end, stamped with media time (start + index / fps)."""

    kind = "video"

    def __init__(
        self,
        path: str | Path,
        *,
        start_time: datetime | None = None,
        fps: float | None = None,
        stop_event: threading.Event | None = None,
        capture_factory: Callable[[str], VideoCaptureLike] | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__(str(self.path), stop_event)
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            self.identity = file_identity(self.path)
        except OSError as exc:
            raise SourceError(f"cannot read video {self.path}: {exc.strerror or exc}") from None
        factory = capture_factory or cv2.VideoCapture
        self._capture: VideoCaptureLike | None = factory(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            self._capture = None
            raise SourceError(f"cannot decode video {self.path} (not a video, or damaged)")
        file_fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        plausible = MIN_FPS <= file_fps <= 1000
        if fps is None and not plausible:
            stated = f"states {file_fps:g} fps" if file_fps > 0 else "does not state its frame rate"
            log.warning(
                "%s %s; reading it at %g fps (set source.fps to the true rate)",
                self.path,
                stated,
                ASSUMED_FPS,
            )
        self.fps = float(fps) if fps else (file_fps if plausible else ASSUMED_FPS)
        count = float(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        self.frame_count: int | None = int(count) if count > 0 else None
        if start_time is not None:
            self.start_time = _utc(start_time)
        else:
            mtime = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
            self.start_time = mtime - timedelta(seconds=(self.frame_count or 0) / self.fps)

    def origin_of(self, timestamp: datetime) -> str:
        return self.identity

    @property
    def origins_read(self) -> set[str]:
        return {self.identity}

    @property
    def duration_s(self) -> float | None:
        return None if self.frame_count is None else self.frame_count / self.fps

    def timestamp(self, index: int) -> datetime:
        return self.start_time + timedelta(seconds=index / self.fps)

    def _frames(self) -> Iterator[Frame]:
        capture = self._capture
        index = 0
        while capture is not None and not self._stopped():
            try:
                ok, image = capture.read()
            except cv2.error as exc:
                log.warning("%s: decoding failed at frame %d (%s); stopping", self.path, index, exc)
                break
            if not ok or image is None:
                self._log_end(index)
                break
            yield Frame(self.timestamp(index), image)
            index += 1
            self.frames_read = index

    def _log_end(self, index: int) -> None:
        # Containers round their frame count; a frame or two short is not truncation.
        expected = self.frame_count
        if expected is not None and index < expected - 2:
            log.warning(
                "%s is truncated or damaged: decoding stopped after %d of %d frames",
                self.path,
                index,
                expected,
            )
        else:
            log.info("%s: end of video after %d frames", self.path, index)

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
