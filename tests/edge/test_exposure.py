"""Exposure matching (``vision.exposure``): the gain and offset of a photo whose camera
stepped its exposure, found despite an animal in it."""

from __future__ import annotations

import numpy as np

from edge_agent.vision.exposure import exposure_fit, matched_exposure


def view(seed: int = 0) -> np.ndarray:
    """A textured grey view at motion resolution, its levels well inside 0-255."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 160, (240, 320)).astype(np.uint8)


def test_the_fit_recovers_gain_and_offset_with_an_animal_in_a_quarter_of_the_view():
    target = view()
    stepped = np.clip(target.astype(np.float32) * 1.2 + 15, 0, 255)
    stepped[60:180, 80:240] = 250  # a bright animal near the lamp: a quarter of the view
    gain, offset = exposure_fit(stepped.astype(np.uint8), target)
    # stepped = 1.2 target + 15, so the fit maps it back: target = stepped / 1.2 - 12.5
    assert abs(gain - 1 / 1.2) < 0.02
    assert abs(offset + 12.5) < 1.5


def test_a_matched_photo_differs_only_where_the_animal_is():
    target = view(1)
    stepped = np.clip(target.astype(np.float32) * 0.9 + 30, 0, 255).astype(np.uint8)
    stepped[100:140, 100:160] = 10  # a dark animal
    matched = matched_exposure(stepped, target)
    diff = np.abs(matched.astype(np.int16) - target.astype(np.int16))
    animal = np.zeros(diff.shape, bool)
    animal[100:140, 100:160] = True
    assert diff[~animal].max() <= 2
    assert diff[animal].mean() > 40


def test_a_photo_at_the_same_exposure_is_returned_as_it_was():
    target = view(2)
    rng = np.random.default_rng(3)
    noisy = np.clip(target + rng.normal(0, 1.0, target.shape), 0, 255).astype(np.uint8)
    assert matched_exposure(noisy, target) is noisy


def test_a_fit_that_is_no_exposure_step_leaves_the_photo_alone():
    target = view(4)
    dark = (target // 8).astype(np.uint8)  # the lamp failed: a gain of 8 is no step
    assert matched_exposure(dark, target) is dark


def test_only_the_given_rows_are_fitted():
    """The data bars' rows (the same text in every photo, at no exposure) are left out of
    the fit; fitted on them alone the photo would look unchanged."""
    target = view(5)
    stepped = np.clip(target.astype(np.float32) + 20, 0, 255).astype(np.uint8)
    stepped[:20] = target[:20]
    assert abs(exposure_fit(stepped, target, slice(20, None))[1] + 20) < 1.0


def test_a_black_photo_is_not_lifted_to_the_view():
    """The lamp did not fire: a black photo has no view to fit an exposure on; lifted to
    the target's mean grey it would differ from the view in patches that look like things."""
    black = np.full((240, 320), 3, np.uint8)
    assert matched_exposure(black, view(6)) is black
