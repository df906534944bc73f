"""The whole frame pipeline on videos and photo bursts the tests generate, against the truth
the scene generator knows: MaxN per event and label, events split by the gap, a swaying
branch that never counts, an animal lingering for a minute that counts once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.capture.factory import open_source
from edge_agent.config import ClassifierSettings, Settings
from edge_agent.counting.events import ClosedEvent
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes, writers
from edge_agent.demo.writers import write_sprite_dataset
from edge_agent.service.model import load_classifier
from edge_agent.vision.bursts import BurstLocaliser
from edge_agent.vision.classifier import Classifier

START = datetime(2024, 6, 1, 21, 0, tzinfo=UTC)


def make_settings(source: Path | None = None, **sections: Any) -> Settings:
    data: dict[str, Any] = {k: dict(v) for k, v in sections.items()}
    if source is not None:
        data.setdefault("source", {})["uri"] = str(source)
    return Settings.model_validate(data)


def process(
    path: Path, settings: Settings, classifier: Any = None, **source_kwargs: Any
) -> tuple[list[ClosedEvent], Pipeline]:
    settings = settings.model_copy(
        update={"source": settings.source.model_copy(update={"uri": str(path)})}
    )
    pipeline = Pipeline(settings, classifier)
    with open_source(settings.source, timezone=settings.trap.timezone, **source_kwargs) as src:
        events = list(pipeline.run(src))
    return events, pipeline


def per_event(events: list[ClosedEvent]) -> list[int]:
    """Total MaxN of each event (motion-only mode labels everything "animal")."""
    return [sum(event.counts.values()) for event in events]


def truth_per_event(truth: scenes.SceneTruth) -> list[int]:
    return [sum(event.counts.values()) for event in truth.events]


# -- motion-only mode: what the motion gate and the tracker decide -------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_individuals_together_give_maxn_k(tmp_path: Path, k: int) -> None:
    scene = scenes.Scene(duration_s=9, walks=scenes.crossing("deer", 1.0, 7.0, k=k), seed=k)
    truth = writers.write_video(scene, tmp_path / "group.avi", event_gap_s=5)
    assert truth_per_event(truth) == [k]  # the scene really shows k at once
    events, pipeline = process(truth.path, make_settings(events={"event_gap_s": 5}))
    assert [e.counts for e in events] == [{"animal": k}]
    (observation,) = events[0].observations
    assert observation.tracks >= k
    assert pipeline.frames == truth.frames == 90
    assert pipeline.open_events == 0


def test_the_swaying_branch_makes_no_event(tmp_path: Path) -> None:
    scene = scenes.Scene(
        duration_s=20,
        branches=[
            scenes.Branch(base=(0.85, 0.0), length=0.45, amplitude=14, period=1.4),
            scenes.Branch(base=(0.1, 0.0), length=0.35, angle=70, amplitude=20, period=2.3),
            # Hanging in from the left edge, swinging hard.
            scenes.Branch(base=(0.0, 0.45), length=0.4, angle=20, amplitude=25, period=0.9),
        ],
        seed=11,
    )
    truth = writers.write_video(scene, tmp_path / "branch.avi")
    assert truth.events == []
    events, pipeline = process(truth.path, make_settings())
    assert events == []
    assert pipeline.motion_frames > 10  # it moved, and was still not counted


def test_a_branch_beside_the_animals_changes_nothing(tmp_path: Path) -> None:
    scene = scenes.Scene(
        duration_s=16,
        walks=scenes.crossing("boar", 1.0, 6.0, k=2, y=0.7, seed=4),
        branches=[scenes.Branch(base=(0.8, 0.0), length=0.4, amplitude=15, period=1.2)],
        seed=12,
    )
    truth = writers.write_video(scene, tmp_path / "branch_and_boars.mp4", event_gap_s=5)
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 5}))
    assert per_event(events) == truth_per_event(truth) == [2]


@pytest.mark.parametrize("wander", [0.0, 0.01], ids=["still", "grazing"])
def test_one_animal_lingering_for_a_minute_is_one_individual(tmp_path: Path, wander: float) -> None:
    # 3 fps keeps a 70 s clip small; default settings (event gap 60 s) as shipped.
    scene = scenes.Scene(
        duration_s=72, fps=3, walks=[scenes.lingering("boar", 2.0, 60.0, wander=wander)], seed=5
    )
    truth = writers.write_video(scene, tmp_path / "linger.avi", event_gap_s=60)
    events, _ = process(truth.path, make_settings())
    assert [e.counts for e in events] == [{"animal": 1}]
    event = events[0]
    assert event.duration_s > 60
    assert event.observations[0].frames > 0.9 * 60 * 3  # seen while it rested, too


def test_two_events_separated_by_more_than_the_gap_are_two_events(tmp_path: Path) -> None:
    walks = scenes.crossing("fox", 1.0, 5.0) + scenes.crossing("fox", 19.0, 5.0, direction=-1)
    scene = scenes.Scene(duration_s=26, walks=walks, seed=6)
    truth = writers.write_video(scene, tmp_path / "two.avi", event_gap_s=8)
    assert truth_per_event(truth) == [1, 1]  # 13 s apart
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 8}))
    assert per_event(events) == [1, 1]
    assert events[0].end < events[1].start
    assert (events[1].start - events[0].end).total_seconds() > 8
    # With a gap longer than the pause, the same clip is one event (one fox, MaxN 1).
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 20}))
    assert per_event(events) == [1]


def test_media_time_gives_the_same_events_whatever_the_processing_speed(tmp_path: Path) -> None:
    scene = scenes.Scene(duration_s=10, walks=scenes.crossing("hare", 2.0, 5.0), seed=7)
    truth = writers.write_video(scene, tmp_path / "hare.mp4", start_time=START)
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 5}))
    (event,) = events
    # The hare enters at 2 s and leaves by 7 s of media time, however fast the run was.
    assert START + timedelta(seconds=1.5) <= event.start <= START + timedelta(seconds=3)
    assert START + timedelta(seconds=6) <= event.end <= START + timedelta(seconds=7.5)
    later = START + timedelta(days=3)
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 5}), start_time=later)
    assert events[0].start - event.start == timedelta(days=3)
    assert events[0].frames == event.frames


def test_image_folder_burst_with_exif_times_is_one_event(tmp_path: Path) -> None:
    walks = scenes.crossing("deer", 0.0, 6.0, k=2) + scenes.crossing("hare", 900.0, 4.0)
    scene = scenes.Scene(duration_s=910, walks=walks, seed=8)
    times = [0.5 + i for i in range(6)] + [900.2 + 0.8 * i for i in range(5)]
    folder = tmp_path / "DCIM"
    truth = writers.write_image_burst(
        scene, folder, times, start_time=START, timezone="America/Denver", event_gap_s=60
    )
    assert truth_per_event(truth) == [2, 1]
    settings = make_settings(folder, trap={"timezone": "America/Denver"})
    events, pipeline = process(folder, settings)
    assert isinstance(pipeline.localiser, BurstLocaliser)  # an image folder: stills
    assert per_event(events) == [2, 1]
    assert START <= events[0].start <= START + timedelta(seconds=2)  # EXIF local -> UTC
    assert events[1].start >= START + timedelta(seconds=900)
    assert pipeline.frames == 11


def test_whole_frame_mode_counts_presence_in_a_close_up_trap(tmp_path: Path) -> None:
    # A close-up trap: the animal fills most of the view.
    walks = [scenes.Walk("fox", ((1.0, -0.3, 0.5), (6.0, 1.3, 0.5)), width=0.9)]
    scene = scenes.Scene(duration_s=9, walks=walks, seed=9)
    truth = writers.write_video(scene, tmp_path / "closeup.avi", event_gap_s=5)
    settings = make_settings(motion={"method": "whole_frame"}, events={"event_gap_s": 5})
    events, pipeline = process(truth.path, settings)
    assert per_event(events) == [1]
    assert pipeline.tracker.min_displacement == 0.0


def test_naive_timestamps_are_refused() -> None:
    pipeline = Pipeline(make_settings())
    with pytest.raises(ValueError, match="timezone-aware"):
        pipeline.process(datetime(2024, 1, 1), np.zeros((240, 320, 3), np.uint8))
    assert pipeline.close() == []
    assert pipeline.close() == []


@pytest.mark.parametrize(
    ("width", "height", "fps", "seed"),
    [(320, 240, 6, 21), (640, 480, 12, 22), (400, 300, 25, 23), (480, 360, 10, 24)],
)
def test_general_scenes_count_like_the_truth(
    tmp_path: Path, width: int, height: int, fps: float, seed: int
) -> None:
    """Random groups, sizes, directions and speeds at several resolutions and frame rates,
    with a branch in a corner: the mechanism, not a tuning to one clip."""
    rng = np.random.default_rng(seed)
    walks, t = [], 1.0
    for i in range(3):
        duration = float(rng.uniform(4, 8))
        walks += scenes.crossing(
            str(rng.choice(["deer", "boar", "fox", "hare"])),
            t,
            duration,
            k=int(rng.integers(1, 4)),
            y=float(rng.uniform(0.55, 0.7)),
            direction=int(rng.choice([-1, 1])),
            width=float(rng.uniform(0.1, 0.18)),
            seed=seed * 10 + i,
        )
        t += duration + float(rng.uniform(7, 9))
    scene = scenes.Scene(
        width=width,
        height=height,
        fps=fps,
        duration_s=t,
        walks=walks,
        branches=[scenes.Branch(base=(0.95, 0.0), length=0.3, amplitude=12)],
        noise=float(rng.uniform(2, 6)),
        seed=seed,
    )
    truth = writers.write_video(scene, tmp_path / "scene.mp4", event_gap_s=5)
    events, _ = process(truth.path, make_settings(events={"event_gap_s": 5}))
    assert per_event(events) == truth_per_event(truth)


# -- with a real (tiny, int8) classifier ---------------------------------------------------


def test_counts_per_label_equal_the_truth(tmp_path: Path, sprite_model: Path) -> None:
    walks = (
        scenes.crossing("deer", 1.0, 6.0, k=2, seed=1)
        + scenes.crossing("fox", 16.0, 5.0, direction=-1, y=0.7, seed=2)
        + scenes.crossing("boar", 30.0, 6.0, k=3, width=0.13, seed=3)
        + scenes.crossing("hare", 45.0, 5.0, y=0.65, seed=4)
        + scenes.crossing("fox", 45.5, 5.0, direction=-1, y=0.8, seed=5)
    )
    scene = scenes.Scene(
        duration_s=52,
        walks=walks,
        branches=[scenes.Branch(base=(0.93, 0.0), length=0.3)],
        seed=13,
    )
    truth = writers.write_video(scene, tmp_path / "mixed.mp4", event_gap_s=5)
    assert truth.totals == {"boar": 3, "deer": 2, "fox": 2, "hare": 1}
    settings = make_settings(events={"event_gap_s": 5})
    with Classifier(sprite_model, confidence_threshold=0.5) as classifier:
        events, pipeline = process(truth.path, settings, classifier)
    assert [e.counts for e in events] == [e.counts for e in truth.events]
    totals: dict[str, int] = {}
    for event in events:
        for label, n in event.counts.items():
            totals[label] = totals.get(label, 0) + n
    assert totals == truth.totals
    assert all(e.model_sha256 == classifier.sha256 for e in events)
    assert all(0.5 <= o.mean_confidence <= 1.0 for e in events for o in e.observations)
    assert 0 < pipeline.crops_classified < pipeline.frames


def test_no_motion_means_the_classifier_never_runs(tmp_path: Path, sprite_model: Path) -> None:
    scene = scenes.Scene(duration_s=6, seed=14)
    truth = writers.write_video(scene, tmp_path / "empty.avi")
    with Classifier(sprite_model) as classifier:
        events, pipeline = process(truth.path, make_settings(), classifier)
    assert events == []
    assert pipeline.frames == 60
    assert pipeline.motion_frames == 0
    assert pipeline.crops_classified == 0


def test_hot_swapped_classifier_labels_the_next_event(tmp_path: Path, sprite_model: Path) -> None:
    walks = scenes.crossing("fox", 1.0, 5.0) + scenes.crossing("fox", 15.0, 5.0)
    scene = scenes.Scene(duration_s=21, walks=walks, seed=15)
    truth = writers.write_video(scene, tmp_path / "swap.avi", event_gap_s=5)
    pipeline = Pipeline(make_settings(events={"event_gap_s": 5}), classifier=None)
    events: list[ClosedEvent] = []
    with (
        Classifier(sprite_model) as classifier,
        open_source(make_settings(truth.path).source) as source,
    ):
        for i, (timestamp, frame) in enumerate(source):
            if i == 120:  # between the two foxes: the model file arrived
                pipeline.set_classifier(classifier)
            events += pipeline.process(timestamp, frame)
        events += pipeline.close()
    assert [e.counts for e in events] == [{"animal": 1}, {"fox": 1}]
    assert [e.model_sha256 for e in events] == [None, classifier.sha256]


def test_an_animal_that_appears_and_rests_without_walking_in_counts_once(
    tmp_path: Path,
) -> None:
    # It steps out of cover (appears in place), grazes for 40 s and is gone again.
    resting = scenes.Walk("hare", ((3.0, 0.45, 0.6), (43.0, 0.45, 0.6)), width=0.15, wander=0.01)
    scene = scenes.Scene(duration_s=46, fps=4, walks=[resting], seed=16)
    truth = writers.write_video(scene, tmp_path / "rest.avi", event_gap_s=60)
    events, _ = process(truth.path, make_settings())
    assert [e.counts for e in events] == [{"animal": 1}]
    assert events[0].duration_s > 35


def test_a_clip_that_starts_with_the_animal_in_view_counts_it_once(tmp_path: Path) -> None:
    """A PIR-triggered clip: the deer is in the first frame, so the background model starts
    with it; when it walks off, the ground it stood on shows as a "ghost" that never counts."""
    deer = scenes.Walk("deer", ((0.0, 0.4, 0.6), (4.0, 0.4, 0.6), (8.0, 1.2, 0.6)), width=0.16)
    scene = scenes.Scene(duration_s=10, walks=[deer], seed=17)
    truth = writers.write_video(scene, tmp_path / "pir.avi", event_gap_s=60)
    events, _ = process(truth.path, make_settings())
    assert [e.counts for e in events] == [{"animal": 1}]
    assert events[0].observations[0].tracks == 1


# -- scene changes: the camera moved, another recording spliced on, the light switched ------


def _run_frames(frames: list[tuple[float, np.ndarray]], gap_s: float) -> list[ClosedEvent]:
    pipeline = Pipeline(make_settings(events={"event_gap_s": gap_s}), None)
    return list(pipeline.run((START + timedelta(seconds=t), frame) for t, frame in frames))


def _shape(events: list[ClosedEvent], offset_s: float = 0.0) -> list[tuple[float, int]]:
    """(start in seconds after ``offset_s``, total MaxN) of each event."""
    return [
        (round((e.start - START).total_seconds() - offset_s, 1), sum(e.counts.values()))
        for e in events
    ]


@pytest.mark.parametrize("seeds", [(0, 1), (2, 3)])
def test_a_cut_between_two_views_counts_each_view_like_the_view_alone(seeds) -> None:
    """Two scenes back to back in one clip (the camera knocked to another view while the
    last animals of the first were still being counted): the cut ends the first view's
    tracks and event; each view counts as it does alone."""
    gap_s = 10.0
    views = [scenes.example_scene(gap_s=2 * gap_s, seed=seed) for seed in seeds]
    alone = [_run_frames(list(view.frames()), gap_s) for view in views]
    first_s = views[0].frame_count / views[0].fps
    spliced = list(views[0].frames()) + [(first_s + t, f) for t, f in views[1].frames()]
    together = _run_frames(spliced, gap_s)
    expected = _shape(alone[0]) + [(s + first_s, n) for s, n in _shape(alone[1])]
    assert [n for _, n in _shape(together)] == [n for _, n in expected]
    for (start, _), (want, _) in zip(_shape(together), expected, strict=True):
        assert abs(start - want) <= 0.6  # the new view is learned half a second later
    assert all(e.end - e.start < timedelta(seconds=15) for e in together)


def test_the_light_switching_keeps_counting_and_is_not_a_cut() -> None:
    """The infrared lamp switching on mid-clip (the whole frame darker at once, the same
    view): the background is relearned, the animal crossing then is still counted once."""
    scene = scenes.Scene(duration_s=14, walks=scenes.crossing("deer", 4.0, 8.0), seed=5)
    frames = [
        (t, (frame * (0.5 if t >= 6.0 else 1.0)).astype(np.uint8)) for t, frame in scene.frames()
    ]
    events = _run_frames(frames, 5.0)
    assert [sum(e.counts.values()) for e in events] == [1]


def test_a_models_other_class_is_counted_as_unknown(tmp_path: Path, sprite_model: Path) -> None:
    """A model trained with an ``other`` class (animals of species it does not name) makes
    the agent count them as ``unknown``: the same model with its fox class called other."""
    import json
    import shutil

    renamed = tmp_path / "with-other"
    shutil.copytree(sprite_model, renamed)
    manifest = json.loads((renamed / "model.json").read_text())
    manifest["labels"] = ["other" if label == "fox" else label for label in manifest["labels"]]
    (renamed / "model.json").write_text(json.dumps(manifest))
    walks = scenes.crossing("fox", 1.0, 5.0) + scenes.crossing("deer", 15.0, 5.0, seed=2)
    truth = writers.write_video(
        scenes.Scene(duration_s=22, walks=walks, seed=15), tmp_path / "two.mp4", event_gap_s=5
    )
    settings = make_settings(events={"event_gap_s": 5})
    with Classifier(sprite_model, confidence_threshold=0.5) as classifier:
        named, _ = process(truth.path, settings, classifier)
    with Classifier(renamed, confidence_threshold=0.5) as classifier:
        events, _ = process(truth.path, settings, classifier)
    assert [e.counts for e in named] == [{"fox": 1}, {"deer": 1}]
    assert [e.counts for e in events] == [{"unknown": 1}, {"deer": 1}]


def test_a_label_the_site_cannot_see_is_unknown(tmp_path: Path, sprite_model: Path, caplog) -> None:
    """``classifier.not_at_site``: a crop whose best label is one the site cannot see comes
    out ``unknown`` with its confidence and best label kept; other labels are untouched, and
    a name the model lacks changes nothing but is said."""
    write_sprite_dataset(tmp_path / "crops", per_class=12, size=32, seed=5)
    crops = {
        folder.name: np.stack(
            [
                cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                for p in sorted(folder.glob("*.png"))
            ]
        )
        for folder in sorted((tmp_path / "crops").iterdir())
    }
    with Classifier(sprite_model, confidence_threshold=0.0) as plain:
        seen = {label: plain.classify(images) for label, images in crops.items()}
    deer_named = sum(p.label == "deer" for p in seen["deer"])
    assert deer_named >= 6  # the tiny model names most deer crops deer
    settings = ClassifierSettings(confidence_threshold=0.0, not_at_site=["deer", "zebra"])
    with caplog.at_level(logging.WARNING), load_classifier(sprite_model, settings) as site:
        assert site.not_at_site == {"deer"}
        for label, images in crops.items():
            for before, after in zip(seen[label], site.classify(images), strict=True):
                assert after.confidence == before.confidence
                assert after.top_label == before.top_label
                expected = "unknown" if before.label == "deer" else before.label
                assert after.label == expected
    assert any("'zebra'" in r.getMessage() for r in caplog.records)
    # The default names CIFAR-10 labels this model lacks: nothing is said about them.
    caplog.clear()
    with caplog.at_level(logging.WARNING), load_classifier(sprite_model, ClassifierSettings()):
        pass
    assert not [r for r in caplog.records if "not_at_site" in r.getMessage()]
