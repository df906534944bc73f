from __future__ import annotations

import numpy as np
import pytest

from edge_agent.vision.classifier import crop_square, square_box, to_rgb_input


def test_square_box_keeps_centre_and_grows_to_longest_side() -> None:
    x, y, side, side2 = square_box((100, 50, 40, 20), (480, 640, 3), margin=0.0)
    assert side == side2 == 40
    assert (x + side / 2, y + side / 2) == (120, 60)


def test_crop_is_rgb_at_model_size_and_not_squashed() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:60, 20:100] = (255, 0, 0)  # a wide blue (BGR) bar
    crop = crop_square(frame, (20, 40, 80, 20), (32, 32))
    assert crop.shape == (32, 32, 3)
    # BGR blue becomes RGB blue: the third channel.
    assert crop[16, 16, 2] == 255 and crop[16, 16, 0] == 0
    # The bar keeps its aspect ratio: the square crop's rows far from it are background.
    assert crop[2, 16].sum() == 0


def test_crop_at_the_frame_edge_is_padded_not_shifted() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_square(frame, (0, 0, 10, 10), (16, 16))
    assert crop.shape == (16, 16, 3)
    assert (crop == 200).all()


def test_box_outside_the_frame_is_an_error() -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_square(frame, (50, 50, 5, 5), (8, 8))


def test_to_rgb_input_accepts_grey_and_rgba() -> None:
    grey = np.full((64, 48), 7, np.uint8)
    assert to_rgb_input(grey, (32, 32)).shape == (32, 32, 3)
    rgba = np.zeros((32, 32, 4), np.uint8)
    assert to_rgb_input(rgba, (32, 32)).shape == (32, 32, 3)
