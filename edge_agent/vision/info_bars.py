"""The data bars camera traps print on their photos, found so that they are not "motion".

A Reconyx, Bushnell or Browning photo carries a flat band (usually black) along its top or
bottom edge with the date, time, temperature, moon phase and the photo's number in its
burst ("M 3/5") printed on it. The text changes from photo to photo, so against the
burst's median or an empty view of the camera the band differs: a wide, flat candidate on
the frame's edge that a real burst would count as one more animal (the Missouri Camera
Traps sequences of ``../shared/data/field-train`` showed it in most of their bursts).

A band is found in a photo as it was decoded (not the blurred small copy the gate
compares, where printed text smears into the band): the rows from the top or the bottom
edge inward in which most pixels have the row's own median grey level, the text on the
band being the minority. At most ``MAX_SHARE`` of the height is taken from each edge: a
bar is a few percent of it, and a flat scene at the edge (black night ground, blown-out
sky) has nothing to find in it anyway.
"""

from __future__ import annotations

import cv2
import numpy as np

# A row is part of a band when at least this share of its pixels are within TOLERANCE
# grey levels of its median (the text printed on it is the rest).
FLAT_SHARE = 0.6
TOLERANCE = 12
# At most this share of the height from each edge (bars are 2-7% of it).
MAX_SHARE = 0.08
# A difference this much wider than tall, across this share of the frame's width at least,
# is a band of light or of the bar, not an animal.
BAND_ASPECT = 6.0
BAND_WIDTH = 0.3


def info_bars(frame: np.ndarray) -> tuple[int, int]:
    """Rows of the flat bands on the top and the bottom edge of ``frame`` (a photo as
    decoded, BGR or grey): ``(top, bottom)``, 0 where there is none."""
    height = frame.shape[0]
    limit = int(height * MAX_SHARE)
    if limit == 0:
        return 0, 0
    top, bottom = _grey(frame[:limit]), _grey(frame[height - limit :])
    return _flat_run(top, range(limit)), _flat_run(bottom, range(limit - 1, -1, -1))


def _grey(strip: np.ndarray) -> np.ndarray:
    return strip if strip.ndim == 2 else cv2.cvtColor(strip, cv2.COLOR_BGR2GRAY)


def _flat_run(grey: np.ndarray, rows: range) -> int:
    """How many of ``rows``, in order from the edge, are flat."""
    run = 0
    for y in rows:
        row = grey[y].astype(np.int16)
        if np.mean(np.abs(row - np.median(row)) <= TOLERANCE) < FLAT_SHARE:
            break
        run += 1
    return run


def is_band(box: tuple[int, int, int, int], frame_width: int) -> bool:
    """Whether ``box`` is a band across the frame: what a burst shows where the infrared
    flash lit the ground nearest the camera more in one photo than in the next (the
    Missouri sequences: a full-width strip just above the data bar), or a data bar that was
    not flat enough to be found. No animal is six times wider than tall."""
    _x, _y, w, h = box
    return w >= BAND_WIDTH * frame_width and w >= BAND_ASPECT * max(h, 1)


def blank_bars(
    small: np.ndarray, background: np.ndarray, bars: tuple[int, int], height: int
) -> np.ndarray:
    """``small`` (a photo at motion resolution) with the rows of ``bars`` (in the rows of
    a photo ``height`` tall) and a margin taken from ``background``: no difference there.
    The margin covers the gate's blur, which spreads the band's text into the scene."""
    top, bottom = bars
    if not top and not bottom:
        return small
    scene = scene_rows(bars, height, small.shape[0])
    out = small.copy()
    out[: scene.start] = background[: scene.start]
    out[scene.stop :] = background[scene.stop :]
    return out


def scene_rows(bars: tuple[int, int], height: int, small_height: int) -> slice:
    """The rows of a small copy ``small_height`` tall (of a photo ``height`` tall) that
    show the scene: those of ``bars`` and a margin for the gate's blur left out."""
    top, bottom = bars
    scale = small_height / height
    margin = 3
    first = min(small_height, int(np.ceil(top * scale)) + margin) if top else 0
    last = small_height - (
        min(small_height, int(np.ceil(bottom * scale)) + margin) if bottom else 0
    )
    return slice(first, max(first, last))
