"""The synthetic scene generator: deterministic, truthful, and writing files others can read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.capture.folder import ImageFolderSource
from edge_agent.capture.video import VideoFileSource
from edge_agent.demo import scenes, sprites, writers

START = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def test_rendering_is_deterministic_for_a_seed() -> None:
    def make(seed: int) -> scenes.Scene:
        return scenes.Scene(
            walks=scenes.crossing("deer", 0, 5, k=2), branches=[scenes.Branch()], seed=seed
        )

    a, b, c = make(1), make(1), make(2)
    assert np.array_equal(a.render(2.0, 20), b.render(2.0, 20))
    assert not np.array_equal(a.render(2.0, 20), c.render(2.0, 20))
    assert not np.array_equal(a.render(2.0, 20), a.render(2.0, 21))  # fresh sensor noise


def test_truth_counts_animals_at_least_half_in_view() -> None:
    scene = scenes.Scene(duration_s=12, walks=scenes.crossing("fox", 1, 8, k=3), seed=0)
    truth = scene.truth(event_gap_s=5)
    assert len(truth.events) == 1
    assert truth.events[0].counts == {"fox": 3}
    assert 1 < truth.events[0].start_s < truth.events[0].end_s < 9
    assert scene.visible(0.5) == []


def test_truth_splits_events_at_the_gap() -> None:
    walks = scenes.crossing("deer", 0, 4) + scenes.crossing("hare", 14, 4, k=2)
    scene = scenes.Scene(duration_s=20, walks=walks, seed=0)
    assert [e.counts for e in scene.truth(5).events] == [{"deer": 1}, {"hare": 2}]
    assert [e.counts for e in scene.truth(30).events] == [{"deer": 1, "hare": 2}]
    assert scene.truth(5).totals == {"deer": 1, "hare": 2}


def test_lingering_walk_stays_a_minute() -> None:
    walk = scenes.lingering("boar", 2, 60, wander=0.0)
    assert walk.start_s == 2 and walk.end_s == 68
    assert walk.position(1) is None
    assert walk.position(30)[:2] == walk.position(50)[:2] == (0.5, 0.62)
    wandering = scenes.lingering("boar", 2, 60, wander=0.02)
    assert wandering.position(30)[:2] != wandering.position(50)[:2]


def test_branch_sways_but_stays_put() -> None:
    branch = scenes.Branch(amplitude=10)
    angles = [branch.angle_at(t / 10) for t in range(100)]
    assert max(angles) - min(angles) > 5
    assert all(abs(a - branch.angle) <= 10 for a in angles)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_write_video_is_readable_with_media_time(tmp_path: Path, suffix: str) -> None:
    scene = scenes.Scene(duration_s=2, fps=8, walks=scenes.crossing("hare", 0, 2), seed=0)
    truth = writers.write_video(scene, tmp_path / f"clip{suffix}", start_time=START)
    assert truth.path == tmp_path / f"clip{suffix}"
    assert truth.frames == 16 and truth.fps == 8 and truth.start_time == START
    with VideoFileSource(truth.path) as source:
        frames = list(source)
        assert source.start_time == START  # mtime - duration
    assert len(frames) == 16
    first = frames[0].image.astype(int)
    assert np.abs(first - scene.render(0.0, 0).astype(int)).mean() < 8  # lossy, but that frame


def test_write_image_burst_writes_exif_times_in_the_trap_zone(tmp_path: Path) -> None:
    scene = scenes.Scene(duration_s=5, walks=scenes.crossing("deer", 0, 4), seed=0)
    times = [0.5, 1.25, 2.0, 2.75]
    truth = writers.write_image_burst(
        scene, tmp_path, times, start_time=START, timezone="Pacific/Auckland"
    )
    assert truth.frames == 4 and truth.totals == {"deer": 1}
    with ImageFolderSource(tmp_path, timezone="Pacific/Auckland") as source:
        stamps = [frame.timestamp for frame in source]
        origins = {origin for _, _, origin in source.items}
    assert origins == {"exif"}
    assert [(s - START).total_seconds() for s in stamps] == times


def test_write_sprite_dataset_writes_classifier_sized_crops(tmp_path: Path) -> None:
    counts = writers.write_sprite_dataset(tmp_path, per_class=3, size=32, seed=1)
    assert counts == {"deer": 3, "boar": 3, "fox": 3, "hare": 3}
    files = sorted(tmp_path.glob("*/*.png"))
    assert len(files) == 12
    crop = cv2.imread(str(files[0]))
    assert crop.shape == (32, 32, 3)
    again = tmp_path / "again"
    writers.write_sprite_dataset(again, per_class=3, size=32, seed=1)
    assert np.array_equal(crop, cv2.imread(str(again / files[0].relative_to(tmp_path))))


def test_procedural_classes_differ_in_colour() -> None:
    procedural = sprites.ProceduralSprites()
    rng = np.random.default_rng(0)
    means = {}
    for label in procedural.labels:
        image, alpha = procedural.sprite(label, 60, rng)
        assert image.shape[:2] == alpha.shape and image.shape[1] == 60
        means[label] = image[alpha > 0.5].mean(axis=0)
    labels = list(means)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 20, (a, b)
    with pytest.raises(ValueError, match="no procedural sprite"):
        sprites.ProceduralSprites(["unicorn"])


def test_folder_sprites_paste_real_images(tmp_path: Path) -> None:
    for label, colour in (("cat", (0, 0, 255)), ("dog", (255, 0, 0))):
        (tmp_path / label).mkdir()
        cv2.imwrite(str(tmp_path / label / "0001.png"), np.full((32, 32, 3), colour, np.uint8))
    folder = sprites.FolderSprites(tmp_path)
    assert folder.labels == ["cat", "dog"]
    image, alpha = folder.sprite("cat", 64, np.random.default_rng(0))
    assert image.shape == (64, 64, 3) and alpha.min() == 1.0
    scene = scenes.Scene(walks=scenes.crossing("dog", 0, 4), sprites=folder, seed=0)
    frame = scene.render(2.0, 0)
    assert (frame[..., 0] > 200).sum() > 500  # the blue dog is in the frame
    with pytest.raises(ValueError, match="no class"):
        scenes.Scene(walks=scenes.crossing("fox", 0, 4), sprites=folder)


def test_example_scene_has_three_events_and_a_branch() -> None:
    scene = scenes.example_scene(gap_s=15, seed=0)
    truth = scene.truth(event_gap_s=10)
    assert len(truth.events) == 3
    assert sorted(sum(e.counts.values()) for e in truth.events) == [1, 2, 3]
    assert scene.branches
