"""Image folders: photos searched recursively, in EXIF time order (``exif``), decoded at the
size the pipeline uses.

Large photos are decoded reduced (``decode_max_side``): a JPEG by libjpeg's own 1/2, 1/4 or
1/8 scaling, so the full-size picture is never in memory, then scaled down to at most
``decode_max_side`` on its long side. A photo that could only be decoded at more than
``max_megapixels`` (a huge PNG or TIFF, which cannot be decoded reduced) is skipped with a
warning, as is one that OpenCV runs out of memory on, and unreadable, corrupt or truncated
files: the other photos are still counted.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.capture.exif import image_timestamp, jpeg_segments
from edge_agent.capture.frames import Frame, FrameSource, SourceError, files_under
from edge_agent.capture.identity import content_identity

log = logging.getLogger(__name__)

# The photos that carry a camera's EXIF time (the others fall back to file times quietly).
_EXIF = frozenset({".jpg", ".jpeg"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Photos are decoded reduced to at most this long side (source.decode_max_side), and never
# at more than this many megapixels at once (source.max_megapixels).
DECODE_MAX_SIDE = 1600

MAX_MEGAPIXELS = 40.0


def jpeg_is_complete(data: bytes) -> bool:
    """False for a JPEG cut short: no end-of-image marker after the main image's scan.

    OpenCV decodes a truncated JPEG into a half-grey picture without an error, and that
    grey half would look like a huge moving object, so the folder source skips it.
    """
    scan_start = None
    for marker, start, _end in jpeg_segments(data):
        if marker == 0xDA:
            scan_start = start
    return scan_start is not None and data.find(b"\xff\xd9", scan_start) != -1


def photos_in(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (recursively), by path."""
    return files_under(folder, IMAGE_SUFFIXES)


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
        files = photos_in(self.path)
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
        by_file_time = [
            f for _, f, origin in self.items if origin == "mtime" and f.suffix.lower() in _EXIF
        ]
        if by_file_time:
            # A camera's JPEG without its time: a copy or an editor may have reset file
            # times too, so say so, once per folder.
            log.warning(
                "%s: %d photo(s) have no EXIF time; their file modification times are used "
                "(first: %s)",
                self.path,
                len(by_file_time),
                by_file_time[0].name,
            )
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
            self.current_file = file.relative_to(self.path).as_posix()
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


def photo_reader(
    folder: str | Path,
    decode_max_side: int = DECODE_MAX_SIDE,
    max_megapixels: float = MAX_MEGAPIXELS,
) -> Callable[[str], np.ndarray | None]:
    """A function that reads a photo of ``folder`` again (its path relative to the folder,
    ``FrameSource.current_file``) and decodes it as ``ImageFolderSource`` with the same
    settings did: the same pixels, since decoding is deterministic. None (logged) when it
    is gone or no longer decodes. The burst localiser reads a long burst's photos back
    this way instead of holding them all decoded."""
    root = Path(folder)
    max_pixels = max_megapixels * 1e6

    def read(file: str) -> np.ndarray | None:
        path = root / file
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s again: %s", path, exc)
            return None
        if path.suffix.lower() in _EXIF and not jpeg_is_complete(data):
            log.warning("cannot read %s again: it is cut short now", path)
            return None
        return decode_photo(data, path, decode_max_side, max_pixels)

    return read


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
            for marker, start, _end in jpeg_segments(data):
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
