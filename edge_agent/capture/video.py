"""Video files, read to their end and stamped with *media time* (``start + index / fps``),
never the wall clock: processing a file faster (or slower) than real time gives exactly the
counts a live camera would have given.

``start`` is the ``start_time`` argument (the CLI's ``--start``); without it, the file's
modification time minus the clip's duration, because a recorder writes the file until the
clip ends, so its mtime is (about) the time of the last frame. A header that states no
frame rate, or one under ``config.MIN_FPS`` (broken), is read at ``ASSUMED_FPS`` with a
warning. A file that stops decoding before the frame count its header announces is
truncated: the source logs a warning and ends cleanly with the frames it could read.

Frames are decoded one ahead (``prefetch``), on a thread of their own, while the pipeline
works on the last one: OpenCV decodes without holding Python's lock, so on a trap's
several cores decoding and counting overlap instead of taking turns. The frames, their
order and their times are exactly those of reading one at a time; at most ``prefetch``
decoded frames wait (one frame: 6 MB at 1080p). That thread is the parallelism: FFmpeg
itself decodes on one thread (``one_thread_capture``), where by default it starts one per
core, each holding frames of its own: at 1080p about 7 MiB a thread, so with a Pi 4's four
``process`` was measured at its 200 MiB budget (over it into a new database), and one thread
was as fast here (``docs/benchmarks.md``, "Peak memory").

A video read at ``LEAN_MAX_FPS`` or slower (a time-lapse camera's, a clip sampled at 1 fps)
is decoded on the calling thread instead: at a frame a second there is no time to win, and
the frame decoded ahead holds memory (a 1080p time-lapse clip peaked at 210 MiB, 191 MiB
read lean; ``docs/benchmarks.md``, "Time-lapse video").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.capture.frames import (
    Frame,
    FrameSource,
    SourceError,
    VideoCaptureLike,
    _utc,
    files_under,
)
from edge_agent.capture.identity import file_identity
from edge_agent.config import MIN_FPS, TIME_LAPSE_MAX_FPS

log = logging.getLogger(__name__)

# The rate a video is read at when its header states none, or an implausible one.
ASSUMED_FPS = 10.0
# Decoded frames that may wait for the pipeline (0: decode on the caller's thread).
PREFETCH = 1
# A video read at this rate or slower is decoded lean (see the module docstring): the rate
# at which ``motion.stills_max_fps`` by default locates a video in bursts.
LEAN_MAX_FPS = TIME_LAPSE_MAX_FPS
_END = object()  # the decoding thread's last item
# The files of a camera's card that are video: trail cameras write MP4, AVI or MOV (some in
# a "hybrid" mode, a photo then a clip per trigger, into the same folder as their photos).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".mts", ".m2ts", ".3gp", ".wmv", ".asf", ".mpg"}
)


def is_plausible_fps(fps: float) -> bool:
    """Whether a header's frame rate is a camera's, not a broken header's."""
    return MIN_FPS <= fps <= 1000


def reading_rate(stated: float, fps: float | None = None) -> float:
    """The rate a video is read at: ``fps`` (``source.fps``) when given, else the rate its
    header ``stated`` when plausible, else ``ASSUMED_FPS``."""
    if fps:
        return float(fps)
    return stated if is_plausible_fps(stated) else ASSUMED_FPS


def video_rate(path: str | Path, fps: float | None = None) -> float:
    """The rate :class:`VideoFileSource` reads ``path`` at (:func:`reading_rate`), without
    decoding a frame; an unreadable file reads as stating none (opening the source says
    what is wrong with it)."""
    if fps:
        return float(fps)
    capture = cv2.VideoCapture(str(path))
    try:
        stated = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return reading_rate(stated)


def videos_in(folder: str | Path) -> list[Path]:
    """The video files under ``folder`` (recursively, as the image folder source reads its
    photos), by path."""
    return files_under(folder, VIDEO_SUFFIXES)


def one_thread_capture(path: str | Path) -> cv2.VideoCapture:
    """``path`` opened for FFmpeg to decode on one thread (each of its threads holds frames
    of its own; see the module docstring)."""
    return cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])


class VideoFrameReader:
    """A video's frames read a second time, by number (``reader("frame 12")``), for the
    burst localiser (``vision.bursts``), which locates a time-lapse video's frames like
    photos and holds none of them decoded. Frames are asked for in order, so a second
    ``cv2.VideoCapture`` reads forward from where it is (reopened, from the start, for a
    frame behind it): the same decoder reading the same file gives the same pixels, which
    the localiser checks for every frame it reads back. None past the end or for a key
    that is no frame number."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._capture: cv2.VideoCapture | None = None
        self._next = 0  # the number of the frame the capture reads next

    def __call__(self, key: str) -> np.ndarray | None:
        prefix, _, number = key.partition(" ")
        if prefix != "frame" or not number.isdigit():
            return None
        index = int(number)
        if self._capture is None or index < self._next:
            self.release()
            # One decoding thread: frames a second apart need no speed, and each thread
            # holds frames of its own (docs/benchmarks.md, "Time-lapse video": 11 MiB less
            # at the peak of a 1080p clip).
            self._capture = one_thread_capture(self.path)
            self._next = 0
        while self._next < index:
            if not self._capture.grab():
                return self._end()
            self._next += 1
        ok, image = self._capture.read()
        if not ok or image is None:
            return self._end()
        self._next += 1
        return image

    def _end(self) -> None:
        self.release()
        return None

    def release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


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
        prefetch: int = PREFETCH,
    ) -> None:
        self.path = Path(path)
        self.prefetch = prefetch
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        super().__init__(str(self.path), stop_event)
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            self.identity = file_identity(self.path)
        except OSError as exc:
            raise SourceError(f"cannot read video {self.path}: {exc.strerror or exc}") from None
        factory = capture_factory or one_thread_capture
        self._capture: VideoCaptureLike | None = factory(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            self._capture = None
            raise SourceError(f"cannot decode video {self.path} (not a video, or damaged)")
        file_fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        plausible = is_plausible_fps(file_fps)
        if fps is None and not plausible:
            stated = f"states {file_fps:g} fps" if file_fps > 0 else "does not state its frame rate"
            log.warning(
                "%s %s; reading it at %g fps (set source.fps to the true rate)",
                self.path,
                stated,
                ASSUMED_FPS,
            )
        self.fps = reading_rate(file_fps, fps)
        if self.fps <= LEAN_MAX_FPS:
            self.prefetch = 0  # a time-lapse video: no decoding ahead
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
        if self.prefetch < 1:
            for index, frame in enumerate(self._decode()):
                yield frame
                self.frames_read = index + 1
            return
        waiting: queue.Queue[object] = queue.Queue(maxsize=self.prefetch)
        self._reader_stop.clear()
        reader = threading.Thread(
            target=self._decode_ahead, args=(waiting,), name="trapcount-decode", daemon=True
        )
        self._reader = reader
        reader.start()
        try:
            while not self._stopped():
                try:
                    item = waiting.get(timeout=0.1)
                except queue.Empty:
                    if reader.is_alive() or not waiting.empty():
                        continue
                    break  # stopped without an end (closed from another thread)
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Frame)
                yield item
                self.frames_read += 1
        finally:
            self._stop_reader()

    def _decode(self) -> Iterator[Frame]:
        """The file's frames, decoded in order on the calling thread."""
        capture = self._capture
        index = 0
        while capture is not None and not self._stopped() and not self._reader_stop.is_set():
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

    def _decode_ahead(self, waiting: queue.Queue[object]) -> None:
        """The decoding thread: frames into ``waiting`` until the end, an error or a stop."""
        try:
            for frame in self._decode():
                if not self._hand_over(waiting, frame):
                    return
            self._hand_over(waiting, _END)
        except BaseException as exc:  # the caller's thread raises it
            self._hand_over(waiting, exc)

    def _hand_over(self, waiting: queue.Queue[object], item: object) -> bool:
        while not self._reader_stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _stop_reader(self) -> None:
        """Stop the decoding thread and wait for it (before the capture is released)."""
        reader, self._reader = self._reader, None
        if reader is None:
            return
        self._reader_stop.set()
        reader.join()

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
        self._stop_reader()
        if self._capture is not None:
            self._capture.release()
            self._capture = None
