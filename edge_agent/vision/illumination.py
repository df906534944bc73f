"""Day or night: whether a frame was taken in colour or under the infrared lamp.

A camera trap at night lights the scene with infrared LEDs and records through a sensor
without its IR-cut filter: the picture is grey, its three channels nearly equal. By day it
records colour. The classifier sees these two looks very differently (a grey deer is not a
brown one), so each event records which it was taken in, and reports count them apart.

Measured on the real camera-trap photos of ``../shared/data/field-dev`` (benchmarks): the
mean absolute difference between colour channels, on a 64x48 thumbnail, is at most 1.5
grey levels on every IR photo and at least 4.8 on every colour one; ``IR_SPREAD`` sits
between. A dark colour frame with little colour in it may read as IR; that is what it
looks like to the classifier too.
"""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np

COLOUR = "colour"
IR = "ir"
# Mean |R-G|, |G-B|, |B-R| (grey levels) below which a frame is IR.
IR_SPREAD = 3.0
_THUMB = (64, 48)


def channel_spread(frame: np.ndarray) -> float:
    """The mean absolute difference between a BGR frame's channels, on a thumbnail.

    A large frame is sampled every ``step`` pixels first, so that each thumbnail cell
    still averages at least 4x4 samples: resizing a 1920x1080 frame straight to 64x48
    (OpenCV's area resampling at a non-integer ratio) costs more than decoding it (6.5 ms
    against 5 ms here), the sampled one 0.3 ms. An IR frame (R = G = B) stays at 0; on the
    1,340 photos of field-dev and field-train the spread moved by at most 0.2 grey levels
    and no photo changed sides of ``IR_SPREAD``."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return 0.0
    step = min(frame.shape[1] // _THUMB[0], frame.shape[0] // _THUMB[1]) // 4
    if step > 1:
        frame = frame[::step, ::step]
    small = cv2.resize(frame, _THUMB, interpolation=cv2.INTER_AREA)
    return float(pixel_spreads(small).mean()) / 3.0


def pixel_spreads(pixels: np.ndarray) -> np.ndarray:
    """|R-G| + |G-B| + |B-R| of each pixel of uint8 colour images (..., 3), as int16; the
    channel order does not matter. Its mean over a frame (a thumbnail) or a crop, over 3,
    is the spread this module and the classifier's grey routing judge by."""
    pixels = pixels.astype(np.int16)
    a, b, c = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return np.abs(a - b) + np.abs(b - c) + np.abs(c - a)


def illumination_of(frame: np.ndarray) -> str:
    """``IR`` for a grey (infrared) frame, else ``COLOUR``."""
    return IR if channel_spread(frame) < IR_SPREAD else COLOUR


class IlluminationSampler:
    """The illumination of a stream of frames, measured at most once every ``every_s``
    seconds of footage and the last measurement reused in between.

    The light changes over minutes (dusk, the IR lamp switching on), not from one frame to
    the next, and an event records the mode most of its frames had; measuring each frame
    of a 10 fps clip cost a tenth of ``trapcount process``'s time on the benchmark clip
    (``docs/benchmarks.md``, "trapcount process against plain decoding"). A frame of
    another size, a step back in time or ``reset()`` (a new view) measures again; photos,
    a second or more apart, are each measured.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.measured = 0
        self._mode: str | None = None
        self._at: datetime | None = None
        self._shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        self._mode = self._at = self._shape = None

    def __call__(self, timestamp: datetime, frame: np.ndarray) -> str:
        age = None if self._at is None else (timestamp - self._at).total_seconds()
        if (
            self._mode is None
            or frame.shape != self._shape
            or age is None
            or not (0 <= age < self.every_s)
        ):
            self._mode = illumination_of(frame)
            self._at, self._shape = timestamp, frame.shape
            self.measured += 1
        return self._mode
