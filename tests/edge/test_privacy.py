"""Privacy guard and kept media, with a real face: the public-domain NASA ``astronaut``
photograph from scikit-image walks through a synthetic scene alongside animals."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.config import MediaSettings, PrivacySettings
from edge_agent.counting.tracking import Track
from edge_agent.demo.scenes import Scene, crossing
from edge_agent.demo.sprites import PeopleSprites
from edge_agent.demo.writers import write_video
from edge_agent.service.media import Best, MediaKeeper
from edge_agent.store.database import Store
from edge_agent.vision.privacy import (
    FACE,
    PRECISE_FACE,
    UPPER_BODY,
    Cascade,
    PrivacyGuard,
    blur_regions,
    face_cascade,
)

skimage_data = pytest.importorskip("skimage.data", reason="the astronaut photo needs scikit-image")

START = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)


def astronaut_bgr() -> np.ndarray:
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def plain_faces(image: np.ndarray) -> list:
    """What the stock Haar cascade finds in an image, at its size and upscaled to 480 px."""
    cascade = face_cascade()
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    found = list(cascade.detectMultiScale(grey, 1.1, 3, minSize=(16, 16)))
    scale = 480 / min(grey.shape)
    if scale > 1:
        big = cv2.resize(grey, None, fx=scale, fy=scale)
        found += list(cascade.detectMultiScale(big, 1.1, 3, minSize=(16, 16)))
    return found


@pytest.fixture(scope="module")
def people_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A person walks across the upper half while a deer crosses below, then a fox."""
    walks = (
        crossing("person", 0.5, 5.0, y=0.42, width=0.16)
        + crossing("deer", 1.0, 5.0, y=0.85, width=0.15, direction=-1, seed=3)
        + crossing("fox", 7.0, 3.0, y=0.6, width=0.16, seed=5)
    )
    scene = Scene(
        width=480,
        height=320,
        fps=10,
        duration_s=11,
        walks=walks,
        sprites=PeopleSprites(("deer", "fox")),
        seed=1,
    )
    path = tmp_path_factory.mktemp("people") / "people.avi"
    write_video(scene, path, event_gap_s=60, start_time=START)
    return path


def run_process(tmp_path: Path, video: Path, model: Path, mode: str) -> tuple[Path, Path]:
    config = tmp_path / "trap.toml"
    config.write_text(f'[privacy]\nmode = "{mode}"\n', encoding="utf-8")
    db, media = tmp_path / "db" / "trap.sqlite", tmp_path / "media"
    result = CliRunner().invoke(
        cli,
        [
            *("process", str(video), "-c", str(config), "--db", str(db)),
            *("--model", str(model), "--media", str(media), "-q"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "media: " in result.output
    return db, media


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def test_the_astronaut_has_a_face_the_cascade_finds():
    """The premise of the tests below: at the size it walks through the scene, it does."""
    sprite, _ = PeopleSprites().sprite("person", 80, np.random.default_rng(0))
    assert plain_faces(sprite)
    guard = PrivacyGuard()
    framed = cv2.copyMakeBorder(sprite, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    found = guard.look(framed, (20, 20, 80, 240))
    assert found.face and found.upright and found.strong  # the precise cascade finds it too
    nothing = guard.look(np.full((130, 130, 3), 90, np.uint8), (0, 0, 130, 130))
    assert not nothing.any


def test_drop_mode_writes_no_face_and_counts_the_person(tmp_path, people_video, sprite_model):
    db, media = run_process(tmp_path, people_video, sprite_model, "drop")
    labels = dict(rows(db, "SELECT label, sum(max_n) FROM observations GROUP BY label"))
    assert labels.get("person") == 1
    kept = rows(db, "SELECT path, label, privacy_status, kind FROM media")
    assert kept, "the animals' crops are kept"
    assert all(label != "person" and status == "clear" for _, label, status, _ in kept)
    files = sorted(p for p in media.rglob("*") if p.is_file())
    assert sorted(Path(p) for p, *_ in kept) == files
    for path in files:
        assert not plain_faces(cv2.imread(str(path))), path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(media.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0


def test_blur_mode_writes_the_person_blurred(tmp_path, people_video, sprite_model):
    db, _media = run_process(tmp_path, people_video, sprite_model, "blur")
    kept = rows(db, "SELECT path, label, privacy_status FROM media ORDER BY label")
    people = [(p, s) for p, label, s in kept if label == "person"]
    assert people and all(status == "blurred" for _, status in people)
    assert any(label != "person" for _, label, _ in kept)
    guard = PrivacyGuard()
    for path, *_ in kept:
        image = cv2.imread(path)
        assert image is not None and not plain_faces(image), path
        # The written file, checked with every detector the guard has: nothing left.
        assert not guard.regions(image), path


def test_blurring_hides_the_face_from_the_cascade():
    photo = astronaut_bgr()
    guard = PrivacyGuard(PrivacySettings(mode="blur"))
    assert guard.faces(photo)
    prepared = guard.prepare(photo)
    assert prepared.status == "blurred" and prepared.image is not None
    ok, buffer = cv2.imencode(".jpg", prepared.image)
    assert ok and not plain_faces(cv2.imdecode(buffer, cv2.IMREAD_COLOR))
    assert not plain_faces(blur_regions(photo, [(0, 0, 512, 512)]))
    assert PrivacyGuard(PrivacySettings(mode="drop")).prepare(photo).image is None


# -- the quota and the hard cases -----------------------------------------------------------


def fake_track(track_id: int, label: str, confidence: float, when: datetime, *, other=None):
    track = Track(track_id, (10, 10, 40, 30), when, when, 0, 1, counted=True)
    track.add_vote(label, confidence)
    if other is not None:
        track.add_vote(other, confidence / 2)
    rng = np.random.default_rng(track_id)
    crop = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    track.media = Best(when, 1200, track.box, crop, None)
    return track


def test_the_daily_quota_keeps_the_hardest_crops(tmp_path):
    with Store.open(tmp_path / "q.sqlite") as store:
        from edge_agent.config import TrapSettings

        deployment = store.ensure_deployment(TrapSettings())
        keeper = MediaKeeper(
            MediaSettings(quota_per_label_per_day=2, min_free_mb=0),
            tmp_path / "media",
            store,
            deployment,
            PrivacyGuard(),
        )
        t = START
        for i, (confidence, other) in enumerate(
            [(0.9, None), (0.8, None), (0.95, None), (0.3, None), (0.85, "fox")], start=1
        ):
            track = fake_track(i, "deer", confidence, t + timedelta(minutes=i), other=other)
            keeper.keep(None, (track,))
        kept = {(m.confidence, m.disagreed) for m in store.media(label="deer")}
        assert kept == {(0.3, False), (0.85, True)}
        gone = [(d.reason, d.label) for d in store.media_deletions()]
        assert gone == [("quota", "deer"), ("quota", "deer")]
        # Another day has a quota of its own.
        keeper.keep(None, (fake_track(9, "deer", 0.99, t + timedelta(days=1)),))
        assert len(store.media(label="deer")) == 3
        files = [p for p in (tmp_path / "media").rglob("*.jpg")]
        assert len(files) == 3


# -- collect export feeds trapcount-train ---------------------------------------------------


def test_collect_export_feeds_the_trainer(tmp_path, sprite_model):
    """Kept crops (some reviewed, one relabelled) -> ``collect export`` -> a fine-tuned tiny
    model, initialised from the session's sprite model."""
    pytest.importorskip("tensorflow", reason="training needs TensorFlow")
    from edge_agent.config import TrapSettings
    from edge_agent.demo.writers import write_sprite_dataset
    from trainer.run import train_and_export

    write_sprite_dataset(tmp_path / "sprites", per_class=12, size=48, seed=3)
    db = tmp_path / "trap.sqlite"
    with Store.open(db) as store:
        deployment = store.ensure_deployment(TrapSettings())
        keeper = MediaKeeper(
            MediaSettings(min_free_mb=0), tmp_path / "media", store, deployment, PrivacyGuard()
        )
        i = 0
        for label in ("deer", "fox"):
            for png in sorted((tmp_path / "sprites" / label).glob("*.png")):
                i += 1
                track = fake_track(i, label, 0.6, START + timedelta(seconds=i))
                track.media.crop = cv2.imread(str(png))
                keeper.keep(None, (track,))
        kept = store.media()  # the person check may drop the odd sprite (a false alarm)
        assert len(kept) >= 20 and kept[0].label == kept[1].label == "deer"
        store.set_reviewed_label(kept[0].id, "deer")  # confirmed
        store.set_reviewed_label(kept[1].id, "hare")  # corrected
        deer = sum(m.label == "deer" for m in kept) - 1
        fox = len(kept) - deer - 1
    out = tmp_path / "dataset"
    result = CliRunner().invoke(cli, ["collect", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"wrote {out}: {len(kept)} image(s) (deer {deer}, fox {fox}, hare 1), "
        f"{len(kept) - 2} unreviewed\n"
    )
    unreviewed = (out / "unreviewed.txt").read_text().splitlines()
    assert len(unreviewed) == len(kept) - 2 and all((out / line).is_file() for line in unreviewed)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.rglob("*") if p.is_file())

    init = sprite_model / "model.keras"
    assert init.is_file()
    model_dir = train_and_export(
        data=[out],
        out=tmp_path / "run",
        arch="tiny",
        epochs=1,
        seed=0,
        max_quant_drop=100.0,
        use_cache=False,
        init_from=init,
    )
    assert (model_dir / "model.tflite").is_file()
    import json

    manifest = json.loads((model_dir / "model.json").read_text())
    assert sorted(manifest["labels"]) == ["deer", "fox", "hare"]


# -- the disk guard on a real small filesystem ----------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 2 MiB tmpfs mounted for the test (needs root), unmounted afterwards."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def free_on(path: Path) -> int:
    import shutil

    return shutil.disk_usage(path).free


def fill_to(path: Path, name: str, free: int) -> None:
    """Add a filler file so that ``free`` bytes (to a page) stay free on ``path``'s fs."""
    size = max(0, free_on(path) - free) // 4096 * 4096
    (path / name).write_bytes(b"\0" * size)


def test_the_disk_guard_stops_media_writes_before_the_disk_is_full(
    tmp_path, small_fs, people_video, sprite_model
):
    from edge_agent.config import TrapSettings
    from edge_agent.files import write_private

    config = tmp_path / "trap.toml"
    config.write_text("[media]\nmin_free_mb = 1.0\n", encoding="utf-8")
    reference_db, db = tmp_path / "reference.sqlite", tmp_path / "trap.sqlite"
    media = small_fs / "media"
    args = ["-c", str(config), "--model", str(sprite_model), "-q"]
    reference = CliRunner().invoke(
        cli, ["process", str(people_video), "--db", str(reference_db), *args]
    )
    assert reference.exit_code == 0, reference.output
    counted = rows(reference_db, "SELECT label, max_n FROM observations ORDER BY label")

    # Three old crops of 150 kB, and free space just below the 1 MB threshold.
    with Store.open(db) as store:
        deployment = store.ensure_deployment(TrapSettings())
        media.mkdir(mode=0o700)
        for day in (1, 2, 3):
            path = media / f"old-{day}.jpg"
            write_private(path, b"\xff" * 150_000)
            store.add_media(
                deployment_id=deployment,
                time=datetime(2024, 5, day, tzinfo=UTC),
                kind="crop",
                path=str(path),
                sha256="0" * 64,
                bytes=150_000,
                label="deer",
                confidence=0.5,
                disagreed=False,
                privacy_status="clear",
            )
    fill_to(small_fs, "filler-1", 950_000)

    def process(least_free: int) -> str:
        result = CliRunner().invoke(
            cli, ["process", str(people_video), "--db", str(db), "--media", str(media), *args]
        )
        assert result.exit_code == 0, result.output
        # Counting goes on, whatever happens to media.
        assert rows(db, "SELECT label, max_n FROM observations ORDER BY label") == counted
        assert free_on(small_fs) >= least_free  # never full
        return result.output

    # The oldest media goes first, only as much as needed, and the new crops are written.
    output = process(least_free=1_000_000 - 8192)  # the threshold, give or take a page
    assert "writes stopped" not in output
    assert rows(db, "SELECT path, reason FROM media_deletions") == [
        (str(media / "old-1.jpg"), "disk")
    ]
    new = rows(db, "SELECT path FROM media WHERE path NOT LIKE '%old-%'")
    assert new and all(Path(p).is_file() for (p,) in new)
    assert not (media / "old-1.jpg").exists() and (media / "old-2.jpg").exists()

    # Much less room than all media could free: everything kept goes, oldest first, and
    # then media writes stop, long before the disk is full.
    fill_to(small_fs, "filler-2", 500_000)
    output = process(least_free=500_000 - 8192)
    assert "media: 0 file(s) kept" in output and "media writes stopped: disk low" in output
    deleted = rows(db, "SELECT path, time, reason FROM media_deletions ORDER BY id")
    assert {reason for *_, reason in deleted} == {"disk"}
    assert [t for _, t, _ in deleted] == sorted(t for _, t, _ in deleted)
    assert rows(db, "SELECT count(*) FROM media") == [(0,)]
    assert not [p for p in media.rglob("*") if p.is_file()]


def test_retention_deletes_old_media_only_and_records_it(tmp_path):
    from edge_agent.config import TrapSettings
    from edge_agent.service.media import apply_retention

    with Store.open(tmp_path / "r.sqlite") as store:
        deployment = store.ensure_deployment(TrapSettings())
        keeper = MediaKeeper(
            MediaSettings(min_free_mb=0), tmp_path / "media", store, deployment, PrivacyGuard()
        )
        for i, age_days in enumerate((100, 40, 10), start=1):
            track = fake_track(i, "fox", 0.7, START - timedelta(days=age_days))
            keeper.keep(None, (track,))
        before = {m.path: m.time for m in store.media()}
        assert len(before) == 3
        deleted = apply_retention(store, MediaSettings(retention_days=30), START)
        assert deleted == 2
        (left,) = store.media()
        assert left.time == START - timedelta(days=10)
        assert [(d.reason, d.time) for d in store.media_deletions()] == [
            ("retention", START - timedelta(days=100)),
            ("retention", START - timedelta(days=40)),
        ]
        assert [p for p in before if Path(p).exists()] == [left.path]
        assert apply_retention(store, MediaSettings(retention_days=0), START) == 0


def test_doctor_shows_the_media_folder_and_the_disk_guard(tmp_path):
    from edge_agent.config import settings_from_dict
    from edge_agent.service.doctor import OK, WARN, check_media

    def check(**media):
        settings = settings_from_dict({"media": {"media_dir": "media", **media}}, tmp_path)
        return check_media(settings)

    (tmp_path / "media").mkdir(mode=0o700)
    assert check().status == OK
    low = check(min_free_mb=10_000_000)
    assert low.status == WARN and "media writes stopped" in low.detail
    (tmp_path / "media").chmod(0o755)
    assert "readable by others" in check().detail


def test_a_cascade_built_per_search_finds_what_a_kept_one_finds():
    """The guard's cascades hold no buffers between searches (issue 25's memory): each
    search builds its classifier from the parsed file; it must find the very same boxes."""
    photo = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)
    scenes = [photo, cv2.resize(photo, (240, 240)), cv2.resize(photo, (200, 520))]
    for name in (FACE, PRECISE_FACE, UPPER_BODY):
        kept, built = face_cascade(name), Cascade(name)
        for image in scenes:
            expected = np.asarray(kept.detectMultiScale(image, minNeighbors=3)).reshape(-1, 4)
            found = np.asarray(built.classifier().detectMultiScale(image, minNeighbors=3)).reshape(
                -1, 4
            )
            assert sorted(map(tuple, found.tolist())) == sorted(map(tuple, expected.tolist()))
    assert len(Cascade(FACE).classifier().detectMultiScale(photo, minNeighbors=3)) >= 1
