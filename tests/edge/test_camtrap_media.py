"""The Camtrap DP package as delivered (issue 24): the kept camera frames inside it (copied or
linked), media-level observations with their boxes, crops and private images left out,
deployment dates from the config or flagged, no probability for human classifications.

A real trap database (tests/helpers/trap_databases.py) gets media rows and detections
through the Store, and real JPEG frames written where the media keeper writes them (a
``<day>/<name>`` folder, here the office's copy of the trap's media folder); the package is
validated offline against the official schemas."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.config import load_config, settings_from_dict
from edge_agent.office.camtrap import ExportError, MediaOptions, export_camtrap_dp
from edge_agent.office.camtrap import validate_package as _validate
from edge_agent.office.report_data import open_stores
from edge_agent.store.database import Store
from edge_agent.store.models import Detection
from tests.helpers.media import crossings_video, run_trapcount, write_config
from tests.helpers.trap_databases import CANYON, MEADOW, Planned, build_trap_db, utc

pytest.importorskip("frictionless", reason="the Camtrap DP tests need frictionless (dev extra)")

TRAP_MEDIA = "/var/lib/trapcount/media"  # where the trap wrote them (the recorded paths)
WIDTH, HEIGHT = 640, 480
EVENTS = [
    Planned("2024-06-01T10:00:00", {"fox": 2}),  # event 1
    Planned("2024-06-01T12:00:00", {"deer": 1}),  # event 2
    Planned("2024-06-02T10:00:00", {"person": 1}),  # event 3
]


def validate_package(out: Path) -> list[str]:
    return _validate(out)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_frame(folder: Path, when: str, name: str, seed: int) -> str:
    """A real JPEG frame in ``folder/<UTC day>/``; returns the path the trap recorded."""
    day = folder / when[:10]
    day.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8), (9, 9), 3)
    assert cv2.imwrite(str(day / name), image)
    return f"{TRAP_MEDIA}/{when[:10]}/{name}"


def add_media(store: Store, event_id: int | None, when: str, kind: str, path, **fields) -> int:
    values = {
        "label": "fox",
        "confidence": 0.7,
        "disagreed": False,
        "privacy_status": "clear",
        "sha256": "",
        "bytes": 0,
        "box_x": 64,
        "box_y": 48,
        "box_w": 128,
        "box_h": 96,
    } | fields
    return store.add_media(
        deployment_id=1, event_id=event_id, time=utc(when), kind=kind, path=path, **values
    )


@pytest.fixture
def kept(tmp_path):
    """(database, office media folder): three events, their kept frames and crops."""
    db = build_trap_db(tmp_path / "trap.sqlite", MEADOW, EVENTS)
    media = tmp_path / "office-media"
    fox_at, deer_at = "2024-06-01T10:00:10.500000", "2024-06-01T12:00:05.250000"
    with Store.open(db) as store:
        # Event 1: a clear frame with two foxes, whose boxes the detections table holds.
        path = write_frame(media, fox_at, "100010-500000-e1-t1-fox-frame.jpg", 1)
        add_media(store, 1, fox_at, "frame", path, box_x=320, box_y=240, box_w=160, box_h=120)
        add_media(store, 1, fox_at, "crop", path.replace("frame", "crop"))
        with store.write() as session:
            for track, (x, y, w, h) in ((1, (0.5, 0.5, 0.25, 0.25)), (2, (0.05, 0.6, 0.2, 0.3))):
                session.add(
                    Detection(
                        event_id=1, time=utc(fox_at), file=None, frame=105, track=track,
                        label="fox", confidence=0.8 + track / 100, category="animal",
                        x=x, y=y, w=w, h=h, detector="motion", detector_confidence=None,
                    )
                )  # fmt: skip
            # A box of the same event on another frame: not on the kept one.
            session.add(
                Detection(
                    event_id=1, time=utc(fox_at) + timedelta(seconds=1), file=None, frame=113,
                    track=1, label="fox", confidence=0.9, category="animal",
                    x=0.6, y=0.5, w=0.2, h=0.2, detector="motion", detector_confidence=None,
                )
            )  # fmt: skip
        # Event 2: a clear deer frame without detections: its own box, in frame pixels.
        path = write_frame(media, deer_at, "120005-250000-e2-t1-deer-frame.jpg", 2)
        add_media(store, 2, deer_at, "frame", path, label="deer", confidence=0.66)
        # ... a frame on which the guard blurred someone,
        path = write_frame(media, "2024-06-01T12:00:06", "120006-e2-t2-deer-frame.jpg", 3)
        add_media(store, 2, "2024-06-01T12:00:06", "frame", path, label="deer",
                  privacy_status="blurred")  # fmt: skip
        # ... one written with the guard off,
        path = write_frame(media, "2024-06-01T12:00:07", "120007-e2-t3-deer-frame.jpg", 4)
        add_media(store, 2, "2024-06-01T12:00:07", "frame", path, label="deer",
                  privacy_status="unchecked")  # fmt: skip
        # ... one whose crop a reviewer called a person,
        path = write_frame(media, "2024-06-01T12:00:08", "120008-e2-t4-deer-frame.jpg", 5)
        add_media(store, 2, "2024-06-01T12:00:08", "frame", path, label="deer")
        add_media(store, 2, "2024-06-01T12:00:08", "crop", path.replace("frame", "crop"),
                  label="deer", reviewed_label="person")  # fmt: skip
        # ... one whose file is not in the office's copy,
        add_media(store, 2, "2024-06-01T12:00:09", "frame",
                  f"{TRAP_MEDIA}/2024-06-01/120009-gone-frame.jpg", label="deer")  # fmt: skip
        # ... and one pointing outside any media folder (a tampered database).
        outside = tmp_path / "secret.jpg"
        outside.write_bytes(
            (media / fox_at[:10] / "120005-250000-e2-t1-deer-frame.jpg").read_bytes()
        )
        add_media(store, 2, "2024-06-01T12:00:10", "frame", str(outside), label="deer")
        # Event 3: a person, blurred (blur mode), and a record of a withheld track.
        path = write_frame(media, "2024-06-02T10:00:05", "100005-e3-t1-person-frame.jpg", 6)
        add_media(store, 3, "2024-06-02T10:00:05", "frame", path, label="person",
                  privacy_status="blurred")  # fmt: skip
        add_media(store, 3, "2024-06-02T10:00:06", "record", None, label="fox",
                  privacy_status="suppressed")  # fmt: skip
    return db, media


def export(db: Path, out: Path, settings=None, **media) -> object:
    with open_stores([str(db)]) as stores:
        return export_camtrap_dp(
            stores, out, settings, media=MediaOptions(**media) if media else None
        )


def test_the_package_holds_every_frame_it_lists_and_validates(kept, tmp_path):
    db, media = kept
    out = tmp_path / "pkg"
    result = export(db, out, folder=media)
    assert validate_package(out) == []
    rows = read_csv(out / "media.csv")
    assert [r["fileName"] for r in rows] == [
        "100010-500000-e1-t1-fox-frame.jpg",
        "120005-250000-e2-t1-deer-frame.jpg",
    ]
    for row in rows:
        assert row["filePath"].startswith("media/meadow/")
        packaged = out / row["filePath"]
        assert packaged.is_file() and not packaged.is_symlink()
        original = media / row["timestamp"][:10] / row["fileName"]
        assert packaged.read_bytes() == original.read_bytes()
        assert packaged.stat().st_mode & 0o777 == 0o600
        assert row["filePublic"] == "true"
        assert row["fileMediatype"] == "image/jpeg"
    assert rows[0]["timestamp"] == "2024-06-01T12:00:10+02:00"
    # Every file in the package is listed: nothing private came along.
    files = {p.relative_to(out).as_posix() for p in (out / "media").rglob("*") if p.is_file()}
    assert files == {r["filePath"] for r in rows}
    assert result.media_placed == {"copied": 2}
    assert result.crops == 2  # never listed: not camera media
    assert result.media_left_out == {
        "a person": 2,
        "blurred (people hidden; include_blurred not given)": 1,
        "privacy unchecked: not checked for people": 1,
        "file not found in the media folder": 2,
    }


def test_media_level_observations_carry_the_boxes(kept, tmp_path):
    db, media = kept
    out = tmp_path / "pkg"
    result = export(db, out, folder=media)
    observations = read_csv(out / "observations.csv")
    boxes = [o for o in observations if o["observationLevel"] == "media"]
    assert result.media_observations == len(boxes) == 3
    fox = [o for o in boxes if o["mediaID"] == "meadow-m1"]
    # From the detections of that frame (the box on the next frame is not on it).
    assert [(o["bboxX"], o["bboxY"], o["bboxWidth"], o["bboxHeight"]) for o in fox] == [
        ("0.5", "0.5", "0.25", "0.25"),
        ("0.05", "0.6", "0.2", "0.3"),
    ]
    assert [o["observationTags"] for o in fox] == [
        "label:fox | track:1 | box:motion",
        "label:fox | track:2 | box:motion",
    ]
    assert [o["classificationProbability"] for o in fox] == ["0.8100", "0.8200"]
    (deer,) = [o for o in boxes if o["mediaID"] == "meadow-m3"]
    # The media row's own box (64, 48, 128, 96) on the 640 x 480 frame it read.
    assert (deer["bboxX"], deer["bboxY"], deer["bboxWidth"], deer["bboxHeight"]) == (
        "0.1",
        "0.1",
        "0.2",
        "0.2",
    )
    assert deer["observationTags"] == "label:deer | box:media"
    for o in boxes:
        assert o["eventID"] in {"meadow-e1", "meadow-e2"}
        assert o["eventStart"] <= o["eventEnd"]
        assert o["count"] == "1" and o["observationType"] == "animal"
        assert o["classificationMethod"] == "machine"
    assert deer["scientificName"] == "Cervidae" and deer["eventID"] == "meadow-e2"
    # The event-level observations stay as they were.
    events = [o for o in observations if o["observationLevel"] == "event"]
    assert len(events) == 3 and {o["mediaID"] for o in events} == {""}
    descriptor = json.loads((out / "datapackage.json").read_text("utf-8"))
    assert descriptor["project"]["observationLevel"] == ["event", "media"]


def test_human_classifications_carry_no_probability(kept, tmp_path):
    """The person label comes from the privacy guard's face checks, whose share often reads
    1.0; Camtrap DP asks to omit a probability for human classifications."""
    db, _ = kept
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE observations SET mean_confidence = 1.0 WHERE label = 'person'")
    connection.close()
    out = tmp_path / "pkg"
    export(db, out)
    rows = {r["observationType"]: r for r in read_csv(out / "observations.csv")}
    assert rows["human"]["classificationProbability"] == ""
    assert rows["animal"]["classificationProbability"] != ""
    assert validate_package(out) == []


def test_blurred_frames_only_when_asked_and_never_public(kept, tmp_path):
    db, media = kept
    out = tmp_path / "pkg"
    export(db, out, folder=media, include_blurred=True)
    rows = {r["fileName"]: r for r in read_csv(out / "media.csv")}
    blurred = rows["120006-e2-t2-deer-frame.jpg"]
    assert blurred["filePublic"] == "false"
    assert "blurred" in blurred["mediaComments"]
    assert "100005-e3-t1-person-frame.jpg" not in rows  # a person: never
    assert (out / blurred["filePath"]).is_file()
    assert validate_package(out) == []


def test_linked_media_say_how_and_a_new_export_removes_what_it_no_longer_lists(kept, tmp_path):
    db, media = kept
    out = tmp_path / "pkg"
    result = export(db, out, folder=media, link=True)
    assert result.media_placed == {"hard link": 2}
    for row in read_csv(out / "media.csv"):
        packaged = out / row["filePath"]
        original = media / row["timestamp"][:10] / row["fileName"]
        assert os.path.samefile(packaged, original) and not packaged.is_symlink()
    assert validate_package(out) == []
    # A reviewer now calls the fox frame's crop a person: the next export drops the frame.
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE media SET reviewed_label = 'person' WHERE id = 2")
    connection.close()
    export(db, out, folder=media)
    assert [r["fileName"] for r in read_csv(out / "media.csv")] == [
        "120005-250000-e2-t1-deer-frame.jpg"
    ]
    assert not (out / "media" / "meadow" / "100010-500000-e1-t1-fox-frame.jpg").exists()
    assert validate_package(out) == []


def test_without_a_media_folder_the_package_has_no_media(kept, tmp_path):
    db, _ = kept
    out = tmp_path / "pkg"
    result = export(db, out)
    assert read_csv(out / "media.csv") == []
    assert not (out / "media").exists()
    assert {o["observationLevel"] for o in read_csv(out / "observations.csv")} == {"event"}
    assert result.media_left_out["no media folder given"] == 4  # the clear ones
    assert validate_package(out) == []


def test_the_cli_copies_or_links_and_says_which(kept, tmp_path):
    db, media = kept
    runner = CliRunner()
    out = tmp_path / "pkg"
    result = runner.invoke(
        cli,
        ["export", "camtrap-dp", "--db", str(db), "--out", str(out), "--media", str(media),
         "--validate"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"wrote {out}: 1 deployment(s), 6 observation(s), 2 media",
        f"media: 2 frame(s) in {out / 'media'} (2 copied), 3 media-level observation(s) with boxes",
        "valid Camtrap DP 1.0.2 (checked offline)",
    ]
    assert "note: 2 kept frame(s) not in the package: a person" in result.stderr
    assert "note: 2 kept crop(s) not listed: crops are cut by trapcount" in result.stderr
    assert "note: deployment(s) meadow: dates from the trap's recorded activity" in result.stderr
    linked = runner.invoke(
        cli,
        ["export", "camtrap-dp", "--db", str(db), "--out", str(tmp_path / "linked"),
         "--media", str(media), "--link-media"],
    )  # fmt: skip
    assert linked.exit_code == 0, linked.output
    assert "(2 hard links)" in linked.stdout
    refused = runner.invoke(
        cli, ["export", "camtrap-dp", "--db", str(db), "--out", str(out), "--link-media"]
    )
    assert refused.exit_code == 2
    assert "--link-media needs --media DIR" in refused.stderr


# -- deployment dates ---------------------------------------------------------------------


def test_deployment_dates_come_from_the_config(kept, tmp_path):
    db, _ = kept
    canyon = build_trap_db(
        tmp_path / "canyon.sqlite", CANYON, [Planned("2024-06-02T05:30:00", {"deer": 1})]
    )
    settings = settings_from_dict(
        {
            "trap": {
                "id": "meadow",
                "timezone": "Europe/Berlin",
                "deployment_start": "2024-05-31",
                "deployment_end": "2024-06-09T12:00:00+02:00",
            }
        }
    )
    out = tmp_path / "pkg"
    with open_stores([str(db), str(canyon)]) as stores:
        result = export_camtrap_dp(stores, out, settings)
    rows = {r["deploymentID"]: r for r in read_csv(out / "deployments.csv")}
    meadow = rows["meadow"]
    assert (meadow["deploymentStart"], meadow["deploymentEnd"]) == (
        "2024-05-31T00:00:00+02:00",
        "2024-06-09T12:00:00+02:00",
    )
    assert meadow["deploymentComments"] == ""
    # Another trap, which this config does not describe: its activity, flagged.
    assert rows["canyon"]["deploymentStart"] == "2024-06-01T17:30:00-06:00"  # agent start
    assert "recorded activity" in rows["canyon"]["deploymentComments"]
    assert "trap.deployment_start and trap.deployment_end" in rows["canyon"]["deploymentComments"]
    assert result.dates_from_activity == ["canyon"]
    descriptor = json.loads((out / "datapackage.json").read_text("utf-8"))
    assert descriptor["temporal"] == {"start": "2024-05-31", "end": "2024-06-09"}
    assert validate_package(out) == []


def test_without_config_dates_the_activity_is_used_and_flagged(kept, tmp_path):
    db, _ = kept
    settings = settings_from_dict(
        {"trap": {"id": "meadow", "deployment_start": "2024-05-30T08:00:00+02:00"}}
    )
    out = tmp_path / "pkg"
    export(db, out, settings)
    (row,) = read_csv(out / "deployments.csv")
    assert row["deploymentStart"] == "2024-05-30T08:00:00+02:00"
    # Still out: the end is its last heartbeat, 4 h after the last event; only it is flagged.
    assert row["deploymentEnd"] == "2024-06-02T16:00:00+02:00"
    assert row["deploymentComments"].startswith("deploymentEnd from the trap's recorded activity")
    assert "deploymentStart" not in row["deploymentComments"]
    assert "trap.deployment_end in the trap's config" in row["deploymentComments"]
    out2 = tmp_path / "pkg2"
    export(db, out2)
    (row,) = read_csv(out2 / "deployments.csv")
    assert row["deploymentStart"] == "2024-06-01T06:00:00+02:00"  # the agent's start
    assert row["deploymentComments"].startswith(
        "deploymentStart and deploymentEnd from the trap's recorded activity"
    )


def test_footage_processed_later_starts_at_its_first_event(tmp_path):
    """`process` opens the deployment when it runs, after the footage: the fallback start
    is then the first event, so no observation lies before its deployment."""
    db = build_trap_db(tmp_path / "t.sqlite", MEADOW, [Planned("2024-06-01T10:00:00", {"fox": 1})])
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE deployments SET start_time = '2024-07-01 09:00:00'")
        connection.execute("DELETE FROM heartbeats")
    connection.close()
    out = tmp_path / "pkg"
    export(db, out)
    (row,) = read_csv(out / "deployments.csv")
    assert row["deploymentStart"] == "2024-06-01T12:00:00+02:00"
    (observation,) = read_csv(out / "observations.csv")
    assert row["deploymentStart"] <= observation["eventStart"] <= row["deploymentEnd"]
    assert validate_package(out) == []


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (
            {"deployment_start": "2024-06-01T12:30:00+02:00"},
            "trap.deployment_start (2024-06-01T12:30:00+02:00) is after deployment meadow's "
            "first record (2024-06-01T12:00:00+02:00)",
        ),
        (
            {"deployment_end": "2024-06-01"},
            "trap.deployment_end (2024-06-01) is before deployment meadow's last record "
            "(2024-06-02T12:00:43+02:00)",
        ),
    ],
)
def test_config_dates_that_miss_an_event_are_one_line_naming_the_key(
    kept, tmp_path, dates, expected
):
    db, _ = kept
    settings = settings_from_dict({"trap": {"id": "meadow", "timezone": "Europe/Berlin", **dates}})
    with pytest.raises(ExportError) as info:
        export(db, tmp_path / "pkg", settings)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "pkg").exists()  # checked before anything is written


# -- from the trap ------------------------------------------------------------------------


def test_the_frames_a_trap_kept_are_delivered_with_their_boxes(tmp_path):
    """End to end: `trapcount process` with media.keep_frames keeps crops and frames (the
    shipped model, a generated clip), the media folder is copied to the office, and the
    package made from that copy holds every frame it lists, each with its boxes."""
    crossings_video(
        tmp_path / "clip.mp4", [("deer", 1, 1.0, 4.0), ("fox", 2, 7.0, 4.0)], duration_s=13
    )
    write_config(
        tmp_path / "trap.toml",
        {
            "trap": {"id": "meadow", "latitude": 52.5, "longitude": 13.4,
                     "timezone": "Europe/Berlin", "deployment_start": "2024-05-31"},
            "media": {"keep_frames": True},
            "storage": {"db_path": "trap.sqlite"},
            "events": {"event_gap_s": 3.0},
        },
    )  # fmt: skip
    done = run_trapcount(
        "process", "clip.mp4", "--config", "trap.toml", "--media", "kept", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    shutil.copytree(tmp_path / "kept", tmp_path / "office-copy")
    kept_frames = list((tmp_path / "office-copy").rglob("*-frame.jpg"))
    assert kept_frames  # the keeper kept frames
    out = tmp_path / "pkg"
    result = export(
        tmp_path / "trap.sqlite",
        out,
        load_config(tmp_path / "trap.toml"),
        folder=tmp_path / "office-copy",
    )
    assert validate_package(out) == []
    media = read_csv(out / "media.csv")
    assert len(media) == result.media == len(kept_frames)  # all clear: no person in the clip
    observations = read_csv(out / "observations.csv")
    for row in media:
        packaged = out / row["filePath"]
        assert packaged.is_file()
        (original,) = [f for f in kept_frames if f.name == row["fileName"]]
        assert packaged.read_bytes() == original.read_bytes()
        boxes = [o for o in observations if o["mediaID"] == row["mediaID"]]
        assert boxes, row
        for box in boxes:
            x, y, w, h = (float(box[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight"))
            assert 0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x + 1e-6 and 0 < h <= 1 - y + 1e-6
    (deployment,) = read_csv(out / "deployments.csv")
    assert deployment["deploymentStart"] == "2024-05-31T00:00:00+02:00"
    assert deployment["deploymentComments"].startswith("deploymentEnd from the trap's recorded")
