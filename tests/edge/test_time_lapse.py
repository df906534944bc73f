"""Time-lapse video: a clip of one frame a second or slower is located like photos, in
bursts (``vision.localiser.is_time_lapse``), and a burst of frames that cannot be read again
stays within ``bursts.MAX_KEPT_BYTES``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.capture.factory import open_source
from edge_agent.capture.video import PREFETCH, VideoFrameReader
from edge_agent.config import Settings
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes
from edge_agent.demo.writers import write_video
from edge_agent.vision.bursts import MAX_KEPT_BYTES, BurstLocaliser
from edge_agent.vision.localiser import localiser_for
from edge_agent.vision.motion import MotionLocaliser


def shifting_clip(path: Path, *, fps: float, animal: bool = True) -> Path:
    """A clip of ``fps`` with, when ``animal``, a deer in view from the first frame that
    shifts between two spots a little apart every two seconds (grazing, milling at a
    waterhole): it never travels its length and is never still from frame to frame."""
    walks = []
    if animal:
        path_points = tuple((float(t), 0.4 + 0.08 * ((t // 2) % 2), 0.6) for t in range(31))
        walks = [scenes.Walk("deer", path_points, width=0.14, seed=1)]
    scene = scenes.Scene(fps=fps, duration_s=30, walks=walks, seed=3)
    write_video(scene, path, event_gap_s=5.0)
    return path


def settings_for(path: Path, **motion: object) -> Settings:
    return Settings.model_validate({"source": {"uri": str(path)}, "motion": motion})


def counts_of(settings: Settings) -> tuple[list[int], Pipeline]:
    """MaxN per event, motion only (no classifier), and the pipeline that counted."""
    pipeline = Pipeline(settings, None)
    with open_source(settings.source) as source:
        events = list(pipeline.run(source))
    events += pipeline.close()
    return [sum(event.counts.values()) for event in events], pipeline


def test_an_animal_shifting_about_in_a_1_fps_clip_counts_one(tmp_path):
    clip = shifting_clip(tmp_path / "timelapse.mp4", fps=1.0)
    settings = settings_for(clip)
    assert isinstance(localiser_for(settings), BurstLocaliser)
    counts, pipeline = counts_of(settings)
    assert counts == [1]
    # Every frame was read again by number, none held decoded through its burst.
    assert pipeline.localiser.read_back == pipeline.frames == 30


def test_a_video_frame_read_again_is_the_frame_the_source_gave(tmp_path):
    clip = shifting_clip(tmp_path / "timelapse.mp4", fps=1.0)
    with open_source(settings_for(clip).source) as source:
        frames = [frame for _, frame in source]
    reader = VideoFrameReader(clip)
    for number in (0, 1, 5, 29, 2):  # forward, and back (reopened)
        assert np.array_equal(reader(f"frame {number}"), frames[number])
    assert reader("frame 30") is None
    assert reader("IMG_0001.JPG") is None


def test_an_empty_1_fps_clip_counts_nothing(tmp_path):
    clip = shifting_clip(tmp_path / "empty.mp4", fps=1.0, animal=False)
    assert counts_of(settings_for(clip))[0] == []


def test_footage_keeps_the_motion_gate_and_the_read_rate_decides(tmp_path):
    clip = shifting_clip(tmp_path / "footage.mp4", fps=10.0, animal=False)
    assert isinstance(localiser_for(settings_for(clip)), MotionLocaliser)
    # source.fps is the rate the file is read at: read at 1 fps, it is a time-lapse.
    slow = Settings.model_validate({"source": {"uri": str(clip), "fps": 1.0}})
    assert isinstance(localiser_for(slow), BurstLocaliser)
    never = Settings.model_validate(
        {"source": {"uri": str(clip), "fps": 1.0}, "motion": {"stills_max_fps": 0}}
    )
    assert isinstance(localiser_for(never), MotionLocaliser)
    chosen = Settings.model_validate(
        {"source": {"uri": str(clip), "fps": 1.0}, "motion": {"localiser": "motion"}}
    )
    assert isinstance(localiser_for(chosen), MotionLocaliser)


def test_frames_that_cannot_be_read_again_are_located_in_bounded_bursts():
    """A 1080p time-lapse's frames stay decoded (a video's frames are not read again):
    the burst is located once they would pass MAX_KEPT_BYTES, not at 60 frames."""
    localiser = BurstLocaliser(Settings().motion, stills_gap_s=10.0)
    start = datetime(2024, 6, 1, 12, tzinfo=UTC)
    rng = np.random.default_rng(0)
    view = rng.integers(60, 200, (1080, 1920, 3), dtype=np.uint8)
    per_burst = MAX_KEPT_BYTES // view.nbytes
    sizes = []
    for i in range(2 * per_burst + 1):
        located = list(localiser.locate(start + timedelta(seconds=i), view.copy(), []))
        if located:
            sizes.append(len(located))
    sizes.append(len(list(localiser.flush())))
    assert sizes == [per_burst, per_burst, 1]
    assert per_burst * view.nbytes <= MAX_KEPT_BYTES


def test_a_time_lapse_video_is_decoded_lean_with_the_same_frames(tmp_path):
    """A video read at 2 fps or slower is decoded on the caller's thread (memory:
    ``capture.video.LEAN_MAX_FPS``), by one FFmpeg thread as every video is; its frames
    are those OpenCV's default decoding gives."""
    clip = shifting_clip(tmp_path / "timelapse.mp4", fps=1.0)
    capture = cv2.VideoCapture(str(clip))
    expected = []
    while (image := capture.read()[1]) is not None:
        expected.append(image)
    capture.release()
    with open_source(settings_for(clip).source) as source:
        assert source.prefetch == 0
        assert source._capture.get(cv2.CAP_PROP_N_THREADS) == 1
        frames = [frame for _, frame in source]
    assert len(frames) == len(expected) == 30
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_footage_is_decoded_ahead_unless_read_as_a_time_lapse(tmp_path):
    clip = shifting_clip(tmp_path / "footage.mp4", fps=10.0)
    capture = cv2.VideoCapture(str(clip))  # OpenCV's default: a decoding thread per core
    expected = []
    while (image := capture.read()[1]) is not None:
        expected.append(image)
    capture.release()
    with open_source(settings_for(clip).source) as source:
        assert source.prefetch == PREFETCH
        assert source._capture.get(cv2.CAP_PROP_N_THREADS) == 1
        frames = [frame for _, frame in source]
    assert len(frames) == len(expected) == 300
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    slow = Settings.model_validate({"source": {"uri": str(clip), "fps": 1.0}})
    with open_source(slow.source) as source:
        assert source.prefetch == 0
        assert source._capture.get(cv2.CAP_PROP_N_THREADS) == 1
