"""When a photo was taken: EXIF DateTimeOriginal (Pillow), else the file's time.

Camera traps write EXIF times in the trap's local clock without a zone: they are read in the
trap's time zone and converted to UTC, unless OffsetTimeOriginal (EXIF 2.31) gives the
offset. SubSecTimeOriginal orders a burst shot within one second. A photo without a usable
EXIF time falls back to its file modification time.

Also here: the JPEG header walker (``jpeg_segments``) that the folder source uses to tell a
truncated JPEG and a JPEG's size without decoding it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

# EXIF tags (Pillow's ExifTags.Base values): in IFD0, the pointer to the Exif IFD and
# DateTime (when the file was last changed: the fallback); in the Exif IFD, the capture time.
EXIF_IFD = 0x8769
DATETIME = 0x0132
DATETIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
SUBSEC_TIME_ORIGINAL = 0x9291


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
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


def parse_exif_datetime(header: bytes, zone: str = "UTC") -> datetime | None:
    """DateTimeOriginal (else DateTime) of an image's EXIF, as an aware UTC datetime, or None.

    ``header``: the start of the file (for a JPEG the APP1 segment is within its first
    64 KiB). ``zone``: the trap's IANA time zone, for times without OffsetTimeOriginal.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(header)) as image:
            exif = image.getexif()
            tags = dict(exif.get_ifd(EXIF_IFD))
            fallback = exif.get(DATETIME)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error):
        return None
    text = tags.get(DATETIME_ORIGINAL) or fallback
    if not text or not isinstance(text, str):
        return None
    try:
        local = datetime.strptime(text.strip("\0 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "    :  :     :  :  " and other placeholders cameras write
    subsec = str(tags.get(SUBSEC_TIME_ORIGINAL) or "").strip("\0 ")
    if subsec.isdigit():
        local += timedelta(seconds=float("0." + subsec))
    return local.replace(tzinfo=_zone(str(tags.get(OFFSET_TIME_ORIGINAL) or ""), zone)).astimezone(
        UTC
    )


def _zone(offset: str, zone: str) -> timezone | ZoneInfo:
    """OffsetTimeOriginal ("+02:00") as a fixed zone, else the trap's zone."""
    offset = offset.strip("\0 ")
    if len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            minutes = int(offset[1:3]) * 60 + int(offset[4:6])
        except ValueError:
            return ZoneInfo(zone)
        return timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
    return ZoneInfo(zone)


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
