"""Motion gate on synthetic numpy frames: boxes, merging, masks, warm-up, whole frame, hold."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import MotionSettings
from edge_agent.vision.motion import MotionGate, merge_boxes


def backdrop(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = rng.integers(60, 120, (height // 8, width // 8, 3)).astype(np.uint8)
    return cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC)


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def with_squares(base: np.ndarray, squares: list[tuple[int, int, int, int]]) -> np.ndarray:
    frame = base.copy()
    for x, y, w, h in squares:
        frame[y : y + h, x : x + w] = (230, 230, 230)
    return frame


def feed(gate: MotionGate, frames: list[np.ndarray], **kwargs) -> list[list[tuple]]:
    return [gate.boxes(frame, **kwargs) for frame in frames]


def warm(gate: MotionGate, base: np.ndarray, n: int = 20, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        assert gate.boxes(noisy(base, rng)) == []


@pytest.mark.parametrize("method", ["mog2", "diff"])
def test_static_noisy_scene_gives_no_boxes(method: str) -> None:
    gate = MotionGate(MotionSettings(method=method))
    rng = np.random.default_rng(0)
    base = backdrop()
    assert all(b == [] for b in feed(gate, [noisy(base, rng, 5) for _ in range(60)]))


@pytest.mark.parametrize("method", ["mog2", "diff"])
def test_moving_square_is_boxed_in_full_frame_pixels(method: str) -> None:
    # 640 wide, motion runs at 320: boxes must come back in 640-wide coordinates.
    base = backdrop(640, 480)
    gate = MotionGate(MotionSettings(method=method, downscale_width=320))
    warm(gate, base)
    rng = np.random.default_rng(2)
    boxes = []
    for step in range(10):
        boxes = gate.boxes(noisy(with_squares(base, [(100 + 12 * step, 200, 60, 40)]), rng))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert abs(x - 208) <= 8 and abs(y - 200) <= 8
    assert 52 <= w <= 80 and 32 <= h <= 56


def test_two_separate_animals_stay_two_and_fragments_merge() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings())
    warm(gate, base)
    rng = np.random.default_rng(3)
    two = gate.boxes(noisy(with_squares(base, [(40, 100, 30, 30), (200, 100, 30, 30)]), rng))
    assert len(two) == 2
    # One animal split by a thin occluder (a 4 px stem in front of it): one box.
    gate = MotionGate(MotionSettings())
    warm(gate, base)
    split = gate.boxes(noisy(with_squares(base, [(100, 100, 30, 30), (134, 100, 30, 30)]), rng))
    assert len(split) == 1
    assert split[0][2] >= 60


def test_merge_boxes_joins_only_near_boxes() -> None:
    blobs = [[0, 0, 10, 10, 50], [12, 0, 10, 10, 50], [100, 100, 5, 5, 10]]
    merged = merge_boxes(blobs, distance=3)
    assert sorted(merged) == [[0, 0, 22, 10, 100], [100, 100, 5, 5, 10]]
    assert len(merge_boxes(blobs, distance=1)) == 3


def test_small_blobs_and_lighting_changes_give_no_boxes() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings(min_area=0.01))
    warm(gate, base)
    rng = np.random.default_rng(4)
    assert gate.boxes(noisy(with_squares(base, [(50, 50, 8, 8)]), rng)) == []  # an insect
    brighter = np.clip(base.astype(np.int16) + 70, 0, 255).astype(np.uint8)
    assert gate.boxes(noisy(brighter, rng)) == []  # the sun came out


def test_warmup_reports_nothing_even_with_motion() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings(warmup_frames=5, method="diff"))
    frames = [with_squares(base, [(20 + 15 * i, 80, 40, 40)]) for i in range(10)]
    results = feed(gate, frames)
    assert results[:5] == [[]] * 5
    assert any(results[5:])


def test_ignore_regions_and_mask_image(tmp_path: Path) -> None:
    base = backdrop()
    moving = [with_squares(base, [(20 + 10 * i, 20, 40, 40)]) for i in range(8)]
    # The square moves in the top-left quarter.
    ignored = MotionGate(MotionSettings(ignore_regions=[[0, 0, 0.5, 0.5]]))
    warm(ignored, base)
    assert all(b == [] for b in feed(ignored, moving))
    mask = np.full((240, 320), 255, np.uint8)
    mask[:120, :160] = 0
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), mask)
    masked = MotionGate(MotionSettings(mask=str(mask_path)))
    warm(masked, base)
    assert all(b == [] for b in feed(masked, moving))
    plain = MotionGate(MotionSettings())
    warm(plain, base)
    assert any(feed(plain, moving))
    with pytest.raises(ValueError, match="not a readable image"):
        MotionGate(MotionSettings(mask=str(tmp_path / "missing.png")))


def test_whole_frame_mode_reports_the_frame_only_when_something_moves() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings(method="whole_frame"))
    warm(gate, base)
    rng = np.random.default_rng(5)
    assert gate.boxes(noisy(base, rng)) == []
    assert gate.boxes(noisy(with_squares(base, [(100, 100, 50, 50)]), rng)) == [(0, 0, 320, 240)]
    always = MotionGate(
        MotionSettings(method="whole_frame", whole_frame_always=True, warmup_frames=0)
    )
    assert always.boxes(base) == [(0, 0, 320, 240)]


def test_hold_keeps_a_resting_animal_from_fading_into_the_background() -> None:
    base = backdrop()
    settings = MotionSettings(history=30)
    frames = [with_squares(base, [(100, 100, 40, 40)]) for _ in range(80)]
    rng = np.random.default_rng(6)
    frames = [noisy(f, rng) for f in frames]
    plain = MotionGate(settings)
    warm(plain, base)
    held = MotionGate(settings)
    warm(held, base)
    plain_boxes = feed(plain, frames)
    held_boxes = []
    box = (100, 100, 40, 40)
    for frame in frames:
        found = held.boxes(frame, hold=[box])
        held_boxes.append(found)
    assert plain_boxes[0] and not plain_boxes[-1]  # absorbed within 80 frames
    assert all(len(b) == 1 for b in held_boxes)  # held: visible all along
    # When it leaves, no ghost stays behind where it rested.
    after = [held.boxes(noisy(base, rng)) for _ in range(3)]
    assert after[-1] == []


def test_reset_forgets_the_background() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings(warmup_frames=3))
    warm(gate, base)
    gate.reset()
    assert gate.frames == 0
    gate.reset(skip_warmup=True)
    assert gate.frames == 3


def test_stillness_tells_a_resting_animal_from_a_fluttering_one() -> None:
    base = backdrop()
    gate = MotionGate(MotionSettings())
    warm(gate, base)
    rng = np.random.default_rng(7)
    box = (100, 100, 40, 40)
    for _ in range(3):
        gate.boxes(noisy(with_squares(base, [box]), rng), hold=[box])
    changed, solid, steady = gate.stillness(box)
    assert changed < 0.05 and solid > 0.8 and steady > 0.9
    # Stripes that flip every frame: everything changes and little is foreground at once.
    flutter = base.copy()
    flutter[100:140:4, 200:240] = 230
    gate.boxes(noisy(flutter, rng))
    shifted = base.copy()
    shifted[102:140:4, 200:240] = 230
    gate.boxes(noisy(shifted, rng))
    changed, solid, _ = gate.stillness((200, 100, 40, 40))
    assert changed > 0.3 or solid < 0.42


def test_ghost_is_told_from_an_object_that_arrived() -> None:
    base = backdrop()
    rng = np.random.default_rng(8)
    square = (100, 100, 50, 40)
    # An object arrives on an empty scene: its outline is in the frame.
    arrived = MotionGate(MotionSettings())
    warm(arrived, base)
    arrived.boxes(noisy(with_squares(base, [square]), rng))
    assert not arrived.is_ghost(square)
    # The object was there from the start (learned as background) and leaves: a ghost.
    left = MotionGate(MotionSettings())
    warm(left, with_squares(base, [square]))
    found = left.boxes(noisy(base, rng))
    assert found
    assert left.is_ghost(found[0])
