"""Choosing a source from the config: ``source.kind``, or ``auto`` guessed from the uri (a
digit: a USB camera; ``picamera2``; a stream URL; a folder; a file)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from edge_agent.capture.folder import ImageFolderSource
from edge_agent.capture.frames import CaptureFactory, FrameSource, SourceError
from edge_agent.capture.live import (
    LiveCaptureSource,
    _picamera2_opener,
    _stream_opener,
    _usb_opener,
    redact,
)
from edge_agent.capture.video import VideoFileSource
from edge_agent.config import SourceSettings

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"})


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
    path = source_path(settings, base_dir)
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "video"
    raise SourceError(f"source {uri!r} is not a camera index, a URL, a folder or a file")


def source_path(settings: SourceSettings, base_dir: str | Path | None = None) -> Path:
    """The file or folder ``settings.uri`` names (a relative path under ``base_dir``)."""
    path = Path(settings.uri.strip()).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path


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
        path = source_path(settings, base_dir)
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
    description = redact(uri) if kind == "rtsp" else f"{kind} camera {uri}"
    return LiveCaptureSource(
        opener,
        description,
        kind=kind,
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        stop_event=stop_event,
    )
