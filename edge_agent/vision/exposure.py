"""A photo's exposure matched to another's: the gain and offset that map its grey levels
onto the other's over the pixels where nothing changed.

A camera trap sets its exposure (or its infrared lamp's power) photo by photo: an animal
walking close to the lamp, a cloud, the lamp warming up. A burst's photos can then differ
by a dozen grey levels over the whole view, which against the burst's median is change
everywhere: more than ``motion.max_area``, so nothing is found, the animal included.

The background bank matches an empty view of the camera to a photo by mean and spread
(``bank.match_exposure``): there the photo is compared with a view taken hours before.
Within a burst the animal can fill a large part of the view and would move a mean and a
spread, so this fit leaves out the pixels it does not explain.
"""

from __future__ import annotations

import numpy as np

# A fit changes nothing unless it moves some grey level by at least this much: photos taken
# a second apart at one exposure are left exactly as they were.
MIN_CHANGE = 2.0
# Gains outside these bounds are not an exposure step (a fit that locked onto an animal
# filling the view, or a view gone dark): the photo is left as it was.
MIN_GAIN, MAX_GAIN = 0.5, 2.0
# Pixels whose residual is within this many grey levels (or three times the fit's median
# residual, when that is more) take part in the next round of the fit: the view, not the
# animal.
INLIER_LEVELS = 8.0
_ROUNDS = 3
# The fit reads every this-many-th pixel along each axis: two numbers need far fewer than a
# 320-px view's 100,000 pixels, and a trap's Pi fits every photo of every burst.
_STRIDE = 4
# A view with less spread than this (grey levels) has nothing to fit an exposure on: a black
# photo (the lamp did not fire) or a lens cap. It is left as it was, not lifted to the
# target's mean.
MIN_SPREAD = 8.0


def exposure_fit(
    image: np.ndarray, target: np.ndarray, rows: slice = slice(None)
) -> tuple[float, float]:
    """(gain, offset) with ``gain * image + offset`` close to ``target`` on most of
    ``rows`` (both grey, the same shape): a least-squares line, refitted on the pixels it
    already explains, starting from the median difference (so the view, the larger part,
    decides, not an animal)."""
    x = image[rows][::_STRIDE, ::_STRIDE].astype(np.float32).ravel()
    y = target[rows][::_STRIDE, ::_STRIDE].astype(np.float32).ravel()
    if x.size < 16 or float(np.percentile(x, 99) - np.percentile(x, 1)) < MIN_SPREAD:
        return 1.0, 0.0
    gain, offset = 1.0, float(np.median(y - x))
    for _ in range(_ROUNDS):
        residual = np.abs(gain * x + offset - y)
        limit = max(INLIER_LEVELS, 3.0 * float(np.median(residual)))
        inliers = residual <= limit
        xs, ys = x[inliers], y[inliers]
        spread = float(xs.var()) if xs.size >= 16 else 0.0
        if spread < 1.0:
            break
        # The least-squares line through the inliers, in closed form.
        gain = float(((xs - xs.mean()) * (ys - ys.mean())).mean()) / spread
        offset = float(ys.mean()) - gain * float(xs.mean())
    return gain, offset


def matched_exposure(
    image: np.ndarray, target: np.ndarray, rows: slice = slice(None)
) -> np.ndarray:
    """``image`` with ``target``'s exposure (``exposure_fit``), or ``image`` itself when
    the fit would move no grey level by ``MIN_CHANGE`` or is no plausible exposure step."""
    gain, offset = exposure_fit(image, target, rows)
    if not MIN_GAIN <= gain <= MAX_GAIN:
        return image
    ends = np.array([0.0, 255.0])
    if float(np.max(np.abs(gain * ends + offset - ends))) < MIN_CHANGE:
        return image
    mapped = image.astype(np.float32) * gain + offset
    return np.clip(mapped + 0.5, 0, 255).astype(np.uint8)
