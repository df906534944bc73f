"""Live cameras: USB (a V4L2 index), streams (RTSP, HTTP, RTMP URLs) and the Pi camera
(picamera2), stamped with the wall clock. A read failure or a camera that does not open is
retried with exponential back-off (``source.reconnect_initial_s`` doubling up to
``reconnect_max_s``); the source keeps going until it is closed or ``stop_event`` is set."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_agent.backoff import Backoff
from edge_agent.capture.frames import (
    CaptureFactory,
    Frame,
    FrameSource,
    SourceError,
    VideoCaptureLike,
)
from edge_agent.config import SourceSettings

log = logging.getLogger(__name__)

# An FFmpeg stream that stalls must not block the agent forever.
STREAM_TIMEOUT_MS = 10_000


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


def redact(uri: str) -> str:
    """A source URI fit for a log: a stream URL's password replaced by ***."""
    parts = urlsplit(uri)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return uri
