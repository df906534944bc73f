"""A camera's card with clips beside its photos (``service.batch.process_path``): ``process``
counts the photos as an image folder and each clip as a video of its own, into one
database; a clip that cannot be decoded is skipped and named, the rest counted."""

from __future__ import annotations

import shutil

import pytest

from edge_agent.demo.scenes import Scene, crossing
from edge_agent.demo.writers import write_image_burst
from tests.helpers.media import START, crossings_video, query, run_trapcount, tiny_model_dir


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One fox crossing: one event."""
    folder = tmp_path_factory.mktemp("clip")
    return crossings_video(folder / "CLIP0001.MP4", [("fox", 1, 1.0, 5.0)], duration_s=12.0)


def write_burst(folder):
    scene = Scene(duration_s=8.0, walks=crossing("deer", 0.5, 6.0), seed=2)
    times = [0.5 + 0.25 * i for i in range(26)]
    return write_image_burst(scene, folder, times, start_time=START)


def sources(db) -> dict[str, int]:
    """Events per source key: a photo burst's key is its first photo, a clip's its file."""
    return dict(query(db, "SELECT source_key, count(*) FROM events GROUP BY source_key"))


def test_a_cards_clip_is_counted_beside_its_photos(tmp_path, model, clip):
    card = tmp_path / "DCIM"
    burst = write_burst(card / "100MEDIA")
    shutil.copy(clip.path, card / "100MEDIA" / "CLIP0001.MP4")
    db = tmp_path / "card.sqlite"
    result = run_trapcount("process", card, "--db", db, "--model", model, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # 26 photos and the clip's 120 frames (12 s at 10 fps).
    assert "146 frames (of which 1 video file)" in result.stdout
    events = sources(db)
    assert sum(events.values()) == len(burst.events) + len(clip.events) == 2
    assert len(events) == 2  # one from the photos, one from the clip

    # Run again over the same card: the same events, none counted twice.
    again = run_trapcount("process", card, "--db", db, "--model", model, "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "removed" not in again.stderr
    assert sources(db) == events


def test_a_folder_of_clips_only_is_counted(tmp_path, model, clip):
    card = tmp_path / "card"
    card.mkdir()
    shutil.copy(clip.path, card / "CLIP0001.MP4")
    # Another clip (another trigger: other pixels), in a container named as some cameras do.
    other = crossings_video(card / "CLIP0002.MOV", [("deer", 1, 2.0, 5.0)], duration_s=12.0)
    db = tmp_path / "clips.sqlite"
    result = run_trapcount("process", card, "--db", db, "--model", model, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "holds no images" not in result.stderr
    assert "(of which 2 video files)" in result.stdout
    events = sources(db)
    assert len(events) == 2  # each clip its own footage
    assert sum(events.values()) == len(clip.events) + len(other.events) == 2


def test_a_clip_that_cannot_be_decoded_is_skipped_and_named(tmp_path, model, clip):
    card = tmp_path / "card"
    card.mkdir()
    shutil.copy(clip.path, card / "CLIP0001.MP4")
    (card / "CLIP0002.MP4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 512)
    db = tmp_path / "damaged.sqlite"
    result = run_trapcount("process", card, "--db", db, "--model", model, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped: 1 video file that could not be decoded (CLIP0002.MP4)" in result.stderr
    assert "(of which 1 video file)" in result.stdout
    assert sum(sources(db).values()) == len(clip.events)
