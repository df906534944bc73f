"""Frame sources: each yields ``(timestamp, frame)`` with a UTC-aware timestamp and a BGR frame.

Kinds (``SourceSettings.kind``; ``auto`` picks from the uri):

- ``video``: a video file, read to its end. Timestamps are *media time*,
  ``start + frame_index / fps``, never the wall clock, so processing a file faster (or
  slower) than real time gives exactly the counts a live camera would have given.
  ``start`` is the ``start_time`` argument (the CLI's ``--start``); without it, the file's
  modification time minus the clip's duration, because a recorder writes the file until
  the clip ends, so its mtime is (about) the time of the last frame. A file that stops
  decoding before the frame count its header announces is truncated: the source logs a
  warning and ends cleanly with the frames it could read.
- ``folder``: an image folder (searched recursively), ordered by EXIF DateTimeOriginal
  (with SubSecTimeOriginal and OffsetTimeOriginal when present), else the file's mtime.
  EXIF times carry no zone unless OffsetTimeOriginal is set: they are read in the trap's
  time zone and converted to UTC. Unreadable, corrupt or truncated images are skipped with
  a warning. EXIF is parsed from the JPEG APP1 segment with the standard library only.
- ``usb`` (a digit: the V4L2 index), ``rtsp`` (``rtsp://``, ``rtsps://``, ``http(s)://``,
  ``rtmp://`` URLs) and ``picamera2``: *live* sources, stamped with the wall clock. A read
  failure or a camera that does not open is retried with exponential backoff
  (``reconnect_initial_s`` doubling up to ``reconnect_max_s``); the source keeps going
  until it is closed or ``stop_event`` is set.

Every source is a context manager whose ``close()`` is safe to call twice. Rate limiting
(``capture.max_fps``, interval bursts) is the service's job: sources just yield.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.config import MIN_FPS, SourceSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"})
# An FFmpeg stream that stalls must not block the agent forever.
STREAM_TIMEOUT_MS = 10_000
# Photos are decoded reduced to at most this long side (source.decode_max_side), and never
# at more than this many megapixels at once (source.max_megapixels).
DECODE_MAX_SIDE = 1600
MAX_MEGAPIXELS = 40.0
# The rate a video is read at when its header states none, or an implausible one.
ASSUMED_FPS = 10.0
# A file's identity hashes its size and this much of its start and of its end.
IDENTITY_SAMPLE_BYTES = 1 << 20


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


# -- video files ---------------------------------------------------------------------------


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


# -- live captures (USB, streams) ----------------------------------------------------------


class Backoff:
    """Exponential backoff: ``initial``, doubling up to ``maximum``; ``reset()`` on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = float(initial)
        self.maximum = max(float(maximum), self.initial)
        self.delay = self.initial

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2.0, self.maximum)
        return delay

    def reset(self) -> None:
        self.delay = self.initial


class LiveCaptureSource(FrameSource):
    """A camera or stream behind an OpenCV-like capture, reconnected with backoff.

    ``open_capture`` makes a new capture each time the source (re)connects; a capture
    that does not open, a ``read()`` that fails or raises: the capture is released and
    reopened after ``reconnect_initial_s``, doubling up to ``reconnect_max_s``. The wait is
    ``stop_event.wait()``, so setting the stop event (or ``close()``) ends it at once.
    """

    live = True

    def __init__(
        self,
        open_capture: CaptureFactory,
        description: str,
        *,
        kind: str = "live",
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        stop_event: threading.Event | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(description, stop_event)
        self.kind = kind
        self._open_capture = open_capture
        self._backoff = Backoff(reconnect_initial_s, reconnect_max_s)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._capture: VideoCaptureLike | None = None
        self._lock = threading.Lock()
        self._reading = False
        self.reconnects = 0

    def _connect(self) -> VideoCaptureLike | None:
        try:
            capture = self._open_capture()
        except (cv2.error, OSError, RuntimeError) as exc:
            log.warning("%s: cannot open (%s)", self.description, exc)
            return None
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            return None
        return capture

    def _drop(self) -> None:
        with self._lock:
            capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _wait(self, what: str) -> bool:
        """Log and sleep the next backoff delay; False when the source was stopped meanwhile."""
        delay = self._backoff.next()
        log.warning("%s: %s; reconnecting in %.3g s", self.description, what, delay)
        deadline = time.monotonic() + delay
        # Short slices: close() from another thread must not wait out a long backoff.
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, 0.1)) or self._closed:
                return False
        return not self._stopped()

    def _frames(self) -> Iterator[Frame]:
        failed = False
        try:
            while not self._stopped():
                if self._capture is None:
                    capture = self._connect()
                    if capture is None:
                        failed = True
                        if not self._wait("camera did not open"):
                            break
                        continue
                    with self._lock:
                        self._capture = capture
                    if failed:
                        self.reconnects += 1
                        log.info("%s: reconnected", self.description)
                with self._lock:
                    capture, self._reading = self._capture, True
                try:
                    ok, image = capture.read() if capture is not None else (False, None)
                except cv2.error as exc:
                    ok, image = False, None
                    log.debug("%s: read raised %s", self.description, exc)
                finally:
                    with self._lock:
                        self._reading = False
                if self._stopped():
                    break
                if not ok or image is None:
                    self._drop()
                    failed = True
                    if not self._wait("read failed"):
                        break
                    continue
                if failed:
                    failed = False
                self._backoff.reset()
                self.frames_read += 1
                yield Frame(self._clock(), image)
        finally:
            self._drop()

    def _release(self) -> None:
        # A read in progress on another thread finishes first; that thread then drops it.
        with self._lock:
            busy = self._reading
        if not busy:
            self._drop()


def _usb_opener(index: int, settings: SourceSettings) -> CaptureFactory:
    def open_usb() -> VideoCaptureLike:
        capture = cv2.VideoCapture(index)
        if capture.isOpened():
            if settings.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
            if settings.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
            if settings.fps:
                capture.set(cv2.CAP_PROP_FPS, settings.fps)
        return capture

    return open_usb


def _stream_opener(uri: str) -> CaptureFactory:
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
    ]

    def open_stream() -> VideoCaptureLike:
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)

    return open_stream


# -- picamera2 -----------------------------------------------------------------------------


class _Picamera2Capture:
    """picamera2 behind the ``VideoCaptureLike`` interface (BGR frames, as OpenCV gives)."""

    def __init__(self, picamera2_class: Any, settings: SourceSettings) -> None:
        self._camera = picamera2_class()
        size = (settings.width or 1280, settings.height or 720)
        # picamera2's "RGB888" is B, G, R in memory: exactly OpenCV's BGR.
        config = self._camera.create_video_configuration(main={"size": size, "format": "RGB888"})
        if settings.fps:
            config["controls"] = {"FrameRate": float(settings.fps)}
        self._camera.configure(config)
        self._camera.start()

    def isOpened(self) -> bool:
        return self._camera is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            return True, np.ascontiguousarray(self._camera.capture_array("main"))
        except Exception as exc:  # picamera2 raises bare RuntimeErrors and others
            log.debug("picamera2 capture failed: %s", exc)
            return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()


def _picamera2_opener(settings: SourceSettings) -> CaptureFactory:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError:
        raise SourceError(
            "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install "
            "python3-picamera2` and create the virtualenv with --system-site-packages"
        ) from None

    def open_picamera2() -> VideoCaptureLike:
        try:
            return _Picamera2Capture(Picamera2, settings)
        except Exception as exc:  # no camera attached, camera busy, ...
            raise RuntimeError(str(exc) or type(exc).__name__) from None

    return open_picamera2


# -- image folders and EXIF ----------------------------------------------------------------

_EXIF_IFD_POINTER = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_SUBSEC_TIME_ORIGINAL = 0x9291
_DATETIME = 0x0132


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield (marker, payload start, payload end) of a JPEG's header segments up to SOS."""
    if data[:2] != b"\xff\xd8":
        return
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        yield marker, pos + 4, pos + 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        pos += 2 + length


def _tiff_ascii(tiff: bytes, endian: str, ifd_offset: int, wanted: set[int]) -> dict[int, Any]:
    """Read the entries ``wanted`` of one TIFF IFD: ASCII values as str, LONG as int."""
    out: dict[int, Any] = {}
    (count,) = struct.unpack(endian + "H", tiff[ifd_offset : ifd_offset + 2])
    for i in range(count):
        entry = ifd_offset + 2 + 12 * i
        tag, kind, n = struct.unpack(endian + "HHI", tiff[entry : entry + 8])
        if tag not in wanted:
            continue
        value_field = tiff[entry + 8 : entry + 12]
        if kind == 2:  # ASCII
            raw = value_field if n <= 4 else tiff[_u32(endian, value_field) :][:n]
            out[tag] = raw[:n].split(b"\0", 1)[0].decode("ascii", "replace").strip()
        elif kind == 4:  # LONG
            out[tag] = _u32(endian, value_field)
    return out


def _u32(endian: str, raw: bytes) -> int:
    return struct.unpack(endian + "I", raw)[0]


def parse_exif_datetime(header: bytes, zone: str = "UTC") -> datetime | None:
    """DateTimeOriginal (else DateTime) of a JPEG's EXIF, as an aware UTC datetime, or None.

    SubSecTimeOriginal adds the fraction that orders a burst shot within one second.
    OffsetTimeOriginal (EXIF 2.31), when present, gives the zone; otherwise the time is
    read in ``zone`` (the trap's IANA time zone) and converted to UTC.
    """
    try:
        for marker, start, end in _jpeg_segments(header):
            if marker == 0xE1 and header[start : start + 6] == b"Exif\0\0":
                return _exif_datetime(header[start + 6 : end], zone)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _exif_datetime(tiff: bytes, zone: str) -> datetime | None:
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None:
        return None
    ifd0 = _u32(endian, tiff[4:8])
    top = _tiff_ascii(tiff, endian, ifd0, {_EXIF_IFD_POINTER, _DATETIME})
    tags: dict[int, Any] = {}
    if _EXIF_IFD_POINTER in top:
        tags = _tiff_ascii(
            tiff,
            endian,
            top[_EXIF_IFD_POINTER],
            {_DATETIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL},
        )
    text = tags.get(_DATETIME_ORIGINAL) or top.get(_DATETIME)
    if not text or not isinstance(text, str):
        return None
    try:
        local = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "    :  :     :  :  " and other placeholders cameras write
    subsec = str(tags.get(_SUBSEC_TIME_ORIGINAL) or "")
    if subsec.isdigit():
        local += timedelta(seconds=float("0." + subsec))
    offset = str(tags.get(_OFFSET_TIME_ORIGINAL) or "")
    tz: timezone | ZoneInfo = ZoneInfo(zone)
    if len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            minutes = int(offset[1:3]) * 60 + int(offset[4:6])
            tz = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
        except ValueError:
            pass
    return local.replace(tzinfo=tz).astimezone(UTC)


def image_timestamp(path: Path, zone: str = "UTC") -> tuple[datetime, str]:
    """(UTC time, "exif" or "mtime") of one image file."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        try:
            with path.open("rb") as handle:
                header = handle.read(128 * 1024)  # APP1 is at most 64 KiB, near the start
        except OSError:
            header = b""
        taken = parse_exif_datetime(header, zone)
        if taken is not None:
            return taken, "exif"
    return datetime.fromtimestamp(path.stat().st_mtime, UTC), "mtime"


def jpeg_is_complete(data: bytes) -> bool:
    """False for a JPEG cut short: no end-of-image marker after the main image's scan.

    OpenCV decodes a truncated JPEG into a half-grey picture without an error, and that
    grey half would look like a huge moving object, so the folder source skips it.
    """
    scan_start = None
    for marker, start, _end in _jpeg_segments(data):
        if marker == 0xDA:
            scan_start = start
    return scan_start is not None and data.find(b"\xff\xd9", scan_start) != -1


class ImageFolderSource(FrameSource):
    """Images under a folder (recursive), in EXIF-time order; bad files skipped with a warning.

    Large photos are decoded reduced (``decode_max_side``): a JPEG by libjpeg's own 1/2, 1/4
    or 1/8 scaling, so the full-size picture is never in memory, then scaled down to at
    most ``decode_max_side`` on its long side. A photo that could only be decoded at more
    than ``max_megapixels`` (a huge PNG or TIFF, which cannot be decoded reduced) is skipped
    with a warning, as is one that OpenCV runs out of memory on: the other photos are
    still counted.
    """

    kind = "folder"

    def __init__(
        self,
        path: str | Path,
        *,
        timezone: str = "UTC",
        stop_event: threading.Event | None = None,
        decode_max_side: int = DECODE_MAX_SIDE,
        max_megapixels: float = MAX_MEGAPIXELS,
    ) -> None:
        self.path = Path(path)
        super().__init__(str(self.path), stop_event)
        if not self.path.is_dir():
            raise SourceError(f"image folder not found: {self.path}")
        self.timezone = timezone
        ZoneInfo(timezone)  # fail now on a bad zone
        self.decode_max_side = decode_max_side
        self.max_pixels = max_megapixels * 1e6
        self.skipped = 0
        self._origins: dict[datetime, str] = {}
        self._read_keys: set[str] = set()
        files = sorted(
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        stamped = []
        for file in files:
            try:
                taken, origin = image_timestamp(file, timezone)
            except OSError as exc:
                log.warning("skipping %s: %s", file, exc)
                self.skipped += 1
                continue
            stamped.append((taken, str(file.relative_to(self.path)), file, origin))
        stamped.sort(key=lambda item: (item[0], item[1]))
        self.items: list[tuple[datetime, Path, str]] = [(t, f, o) for t, _, f, o in stamped]
        if not self.items:
            log.warning("%s holds no images (%s)", self.path, ", ".join(sorted(IMAGE_SUFFIXES)))

    def __len__(self) -> int:
        return len(self.items)

    def origin_of(self, timestamp: datetime) -> str | None:
        return self._origins.get(timestamp)

    @property
    def origins_read(self) -> set[str]:
        return set(self._read_keys)

    def _frames(self) -> Iterator[Frame]:
        for taken, file, _origin in self.items:
            if self._stopped():
                return
            image = self._read(taken, file)
            if image is None:
                self.skipped += 1
                continue
            self.frames_read += 1
            yield Frame(taken, image)

    def _read(self, taken: datetime, file: Path) -> np.ndarray | None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            log.warning("skipping unreadable image %s: %s", file, exc)
            return None
        key = content_identity(data)
        self._read_keys.add(key)
        self._origins.setdefault(taken, key)
        if file.suffix.lower() in (".jpg", ".jpeg") and not jpeg_is_complete(data):
            log.warning("skipping corrupt or truncated JPEG %s", file)
            return None
        return decode_photo(data, file, self.decode_max_side, self.max_pixels)


_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, without decoding its pixels; None when it is
    not recognised (OpenCV may still decode it). JPEG and PNG sizes are read from their
    headers here, exactly, however large; other formats' from Pillow, which refuses to tell
    sizes over twice its limit: those come back as too large to count."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        try:
            for marker, start, _end in _jpeg_segments(data):
                if marker in _JPEG_FRAME_MARKERS:
                    height, width = struct.unpack(">HH", data[start + 1 : start + 5])
                    return width, height
        except struct.error:
            return None
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as header:
            return header.size
    except Image.DecompressionBombError:
        return 1 << 31, 1 << 31
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def reduction_for(width: int, height: int, max_side: int) -> int:
    """The largest of libjpeg's decode reductions (1, 2, 4, 8) that keeps the long side at
    least ``max_side`` (or the largest, 8, when even that is longer)."""
    longest = max(width, height)
    factor = 1
    while factor < 8 and longest / (factor * 2) >= max_side:
        factor *= 2
    return factor


_REDUCED_READ = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decode_photo(
    data: bytes,
    file: Path,
    max_side: int = DECODE_MAX_SIDE,
    max_pixels: float = MAX_MEGAPIXELS * 1e6,
) -> np.ndarray | None:
    """A photo's BGR pixels at most ``max_side`` on the long side, or None (logged) when it
    does not decode, or would need more than ``max_pixels`` decoded at once."""
    size = image_size(data)
    factor = 1
    if size is not None:
        width, height = size
        is_jpeg = data[:2] == b"\xff\xd8"
        factor = reduction_for(width, height, max_side) if is_jpeg else 1
        decoded_pixels = width * height / (factor * factor)
        if decoded_pixels > max_pixels:
            log.warning(
                "skipping %s: %dx%d px is too large to decode (%.0f megapixels at once, "
                "source.max_megapixels is %g)",
                file,
                width,
                height,
                decoded_pixels / 1e6,
                max_pixels / 1e6,
            )
            return None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED_READ[factor])
    except (cv2.error, MemoryError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        log.warning("skipping %s: it does not decode (%s)", file, message)
        return None
    if image is None or image.size == 0:
        log.warning("skipping corrupt image %s: it does not decode", file)
        return None
    longest = max(image.shape[:2])
    if longest > max_side:
        scale = max_side / longest
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


# -- choosing a source ---------------------------------------------------------------------


def source_kind(settings: SourceSettings, base_dir: str | Path | None = None) -> str:
    """The concrete kind: ``settings.kind`` unless ``auto``, then guessed from the uri
    (a relative path is looked up under ``base_dir``)."""
    if settings.kind != "auto":
        return settings.kind
    uri = settings.uri.strip()
    if uri.isdigit():
        return "usb"
    if uri.lower() in ("picamera2", "picamera", "csi"):
        return "picamera2"
    if urlparse(uri).scheme.lower() in STREAM_SCHEMES:
        return "rtsp"
    path = Path(uri).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "video"
    raise SourceError(f"source {uri!r} is not a camera index, a URL, a folder or a file")


def open_source(
    settings: SourceSettings,
    *,
    timezone: str = "UTC",
    start_time: datetime | None = None,
    stop_event: threading.Event | None = None,
    base_dir: str | Path | None = None,
    capture_factory: CaptureFactory | None = None,
) -> FrameSource:
    """Open the source ``settings`` describe.

    ``timezone``: the trap's zone, for EXIF times. ``start_time``: media-time origin of a
    video file. ``base_dir``: relative file and folder paths are resolved against it (the
    config file's folder). ``capture_factory``: for live kinds, makes the capture instead of
    OpenCV (adapters for other cameras; tests).
    """
    kind = source_kind(settings, base_dir)
    uri = settings.uri.strip()
    if kind in ("video", "folder"):
        path = Path(uri).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if kind == "video":
            return VideoFileSource(
                path, start_time=start_time, fps=settings.fps, stop_event=stop_event
            )
        return ImageFolderSource(
            path,
            timezone=timezone,
            stop_event=stop_event,
            decode_max_side=settings.decode_max_side,
            max_megapixels=settings.max_megapixels,
        )
    if capture_factory is not None:
        opener = capture_factory
    elif kind == "usb":
        if not uri.isdigit():
            raise SourceError(f"a USB camera is a device index like 0, not {uri!r}")
        opener = _usb_opener(int(uri), settings)
    elif kind == "picamera2":
        opener = _picamera2_opener(settings)
    else:
        opener = _stream_opener(uri)
    description = _redact(uri) if kind == "rtsp" else f"{kind} camera {uri}"
    return LiveCaptureSource(
        opener,
        description,
        kind=kind,
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        stop_event=stop_event,
    )


def _redact(uri: str) -> str:
    """A stream URL without its password, for logs."""
    parsed = urlparse(uri)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return uri


__all__ = [
    "Backoff",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LiveCaptureSource",
    "SourceError",
    "VideoFileSource",
    "image_timestamp",
    "jpeg_is_complete",
    "open_source",
    "parse_exif_datetime",
    "source_kind",
]
