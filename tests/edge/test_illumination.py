"""Day or night on large frames: the thumbnail of a large frame is taken from every few of
its pixels (``illumination.channel_spread``), which must tell colour from IR as the whole
frame's thumbnail does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.demo import scenes
from edge_agent.vision.illumination import (
    _THUMB,
    COLOUR,
    IR,
    IR_SPREAD,
    channel_spread,
    illumination_of,
)


def whole_thumbnail_spread(frame: np.ndarray) -> float:
    """The spread on the thumbnail of every pixel (what ``channel_spread`` approximates)."""
    small = cv2.resize(frame, _THUMB, interpolation=cv2.INTER_AREA).astype(np.int16)
    b, g, r = small[..., 0], small[..., 1], small[..., 2]
    return float((np.abs(r - g) + np.abs(g - b) + np.abs(b - r)).mean()) / 3.0


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (1600, 1200), (1600, 1067)])
def test_a_large_frame_is_told_colour_or_ir_as_by_its_whole_thumbnail(size) -> None:
    width, height = size
    walks = scenes.crossing("deer", 0.0, 4.0, k=2, seed=1)
    scene = scenes.Scene(width=width, height=height, duration_s=4, walks=walks, seed=2)
    colour = scene.render(2.0)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    dim = (colour * 0.25).astype(np.uint8)  # a dark colour frame, close to the threshold
    for frame, seen_as in ((colour, COLOUR), (grey, IR), (dim, None)):
        whole = whole_thumbnail_spread(frame)
        assert abs(channel_spread(frame) - whole) < 0.25
        if seen_as is not None:
            assert illumination_of(frame) == seen_as
        else:
            assert (channel_spread(frame) < IR_SPREAD) == (whole < IR_SPREAD)
    assert channel_spread(grey) == 0.0  # R = G = B stays exactly IR


def test_a_stream_is_measured_once_a_second_and_again_on_a_new_size_or_view() -> None:
    from datetime import UTC, datetime, timedelta

    from edge_agent.vision.illumination import IlluminationSampler

    scene = scenes.Scene(width=320, height=240, duration_s=4, walks=[], seed=2)
    colour = scene.render(1.0)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    start = datetime(2026, 6, 1, 21, 0, tzinfo=UTC)
    sampler = IlluminationSampler(every_s=1.0)
    # 10 fps: colour for 1.5 s, then the IR lamp switches on.
    seen = []
    for i in range(30):
        frame = colour if i < 15 else grey
        seen.append(sampler(start + timedelta(seconds=i / 10), frame))
    assert sampler.measured == 3  # at 0.0 s, 1.0 s and 2.0 s
    assert seen[:20] == [COLOUR] * 20  # the switch at 1.5 s is seen at the next second
    assert seen[20:] == [IR] * 10
    # A frame of another size, a step back in time and a reset each measure at once.
    assert sampler(start + timedelta(seconds=2.9), colour[:200]) == COLOUR
    assert sampler(start + timedelta(seconds=2.0), grey) == IR
    sampler.reset()
    assert sampler(start + timedelta(seconds=2.1), colour) == COLOUR
    assert sampler.measured == 6
