"""MegaDetector in and out, on photos and boxes the tests make (the scene generator's truth
boxes, as a perfect MegaDetector would write them): ``process --detections`` counts them,
stores them, ``export megadetector`` writes them back in MegaDetector's format (checked by
MegaDetector's own validator where ``megadetector-utils`` is installed, as CI installs it)
and the export reads back in; malformed and mismatched files are one line, exit 2."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import Settings, TrapSettings
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes
from edge_agent.demo.writers import write_image_burst
from edge_agent.store.database import Store
from edge_agent.vision.megadetector import (
    Detections,
    DetectionsError,
    Entry,
    MegaDetectorLocaliser,
    pixel_box,
    read_detections,
)
from tests.helpers.media import crossings_video, query, run_trapcount, tiny_model_dir

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
START = datetime(2024, 6, 1, 21, 0, tzinfo=UTC)
CONF = 0.9
PERSON_BOX = [0.05, 0.05, 0.1, 0.3]
VEHICLE_BOX = [0.7, 0.05, 0.25, 0.2]


def write_md(path: Path, images: list[dict], *, version: object = "1.5", **extra) -> Path:
    data = {
        "info": {"format_version": version, "detector": "md_v5a.0.0.pt"},
        "detection_categories": CATEGORIES,
        "images": images,
        **extra,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def box(bbox: list[float], category: str = "1", conf: float = CONF) -> dict:
    return {"category": category, "conf": conf, "bbox": [round(v, 4) for v in bbox]}


@dataclass
class Card:
    """An SD card: photos, md.json for them, and the boxes expected to be counted."""

    folder: Path
    md: Path
    expected: dict[str, set[tuple[str, tuple[float, ...]]]]  # file -> {(category, bbox)}
    totals: dict[str, int]


def make_card(root: Path) -> Card:
    """Two bursts an hour apart: two deer crossing (4 photos), then a fox with a person
    coming into view behind it and a parked vehicle (3 photos); a last photo MegaDetector
    was not run on; md.json also lists a photo that is not on the card and a box below the
    threshold."""
    folder = root / "card"
    deer = scenes.Scene(walks=scenes.crossing("deer", 0.0, 5.0, k=2, seed=1), seed=4)
    fox = scenes.Scene(walks=scenes.crossing("fox", 0.0, 4.0, seed=2), seed=4)
    times = [1.5, 2.0, 2.5, 3.0]
    write_image_burst(deer, folder, times, start_time=START, prefix="A_")
    write_image_burst(
        fox, folder, [1.0, 1.5, 2.0], start_time=START + timedelta(hours=1), prefix="B_"
    )
    write_image_burst(fox, folder, [30.0], start_time=START + timedelta(hours=2), prefix="C_")
    images, expected = [], {}
    for i, t in enumerate(times):
        file = f"A_{i + 1:04d}.JPG"
        boxes = [box(b) for _, _, b in deer.boxes(t)]
        images.append({"file": file, "detections": boxes})
        expected[file] = {("animal", tuple(b["bbox"])) for b in boxes}
    for i, t in enumerate([1.0, 1.5, 2.0]):
        file = f"B_{i + 1:04d}.JPG"
        boxes = [box(b) for _, _, b in fox.boxes(t)]
        if i >= 1:
            boxes.append(box(PERSON_BOX, "2", 0.8))
        if i == 0:
            boxes.append(box(VEHICLE_BOX, "3", 0.7))
            boxes.append(box([0.4, 0.1, 0.1, 0.1], "1", 0.1))  # below motion.detection_threshold
        images.append({"file": file, "detections": boxes})
        expected[file] = {
            (CATEGORIES[b["category"]], tuple(b["bbox"])) for b in boxes if b["conf"] >= 0.2
        }
    images.append({"file": "Z_9999.JPG", "detections": [box([0.1, 0.1, 0.2, 0.2])]})
    md = write_md(root / "md.json", images)
    return Card(folder, md, expected, {"deer": 2, "fox": 1, "person": 1, "vehicle": 1})


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def processed(tmp_path_factory, model):
    """The card processed with its md.json: (card, database, process result)."""
    root = tmp_path_factory.mktemp("md")
    card = make_card(root)
    db = root / "trap.sqlite"
    args = ("process", card.folder, "--detections", card.md, "--db", db, "--model", model)
    result = run_trapcount(*args, "--media", root / "media", "-q", cwd=root)
    assert result.returncode == 0, result.stderr
    return card, db, result


def report_totals(db: Path, cwd: Path) -> dict[str, int]:
    report = run_trapcount("report", "--db", db, "--format", "json", cwd=cwd)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)["totals"]


def stored_boxes(db: Path) -> dict[str, set[tuple[str, tuple[float, ...]]]]:
    found: dict[str, set] = {}
    for file, category, x, y, w, h in query(
        db, "SELECT file, category, x, y, w, h FROM detections"
    ):
        found.setdefault(file, set()).add((category, tuple(round(v, 4) for v in (x, y, w, h))))
    return found


# -- in: process --detections --------------------------------------------------------------


def test_megadetector_boxes_are_counted_and_stored_per_photo(processed):
    card, db, result = processed
    assert report_totals(db, db.parent) == card.totals
    assert "unprocessed: not in detections: 1 frame" in result.stdout
    assert query(db, "SELECT reason FROM unprocessed") == [("not in detections",)]
    warnings = [line for line in result.stderr.splitlines() if "XNNPACK" not in line]
    assert len(warnings) == 1 and "1 of its 8 entries name no photo" in warnings[0]
    assert "Z_9999.JPG" in warnings[0]
    assert stored_boxes(db) == card.expected
    rows = query(db, "SELECT DISTINCT detector, frame FROM detections")
    assert rows == [("megadetector", None)]
    # Each box keeps MegaDetector's confidence beside its track's label and confidence.
    confs = query(db, "SELECT category, detector_confidence, label FROM detections")
    assert {(c, round(k, 2), label) for c, k, label in confs if c != "animal"} == {
        ("person", 0.8, "person"),
        ("vehicle", 0.7, "vehicle"),
    }
    assert {label for c, _, label in confs if c == "animal"} == {"deer", "fox"}


def test_no_image_of_a_megadetector_person_is_kept(processed):
    _card, db, _result = processed
    media = query(db, "SELECT label, kind, path FROM media")
    assert media, "crops of the animals are kept"
    assert all(label != "person" for label, _, _ in media)
    assert {label for label, kind, _ in media if kind == "crop"} >= {"deer", "fox"}


def test_rerunning_replaces_the_boxes_with_their_events(processed, model, tmp_path):
    card, db, _result = processed
    copy = tmp_path / "again.sqlite"
    shutil.copy(db, copy)
    before = query(copy, "SELECT count(*) FROM detections")
    args = ("process", card.folder, "--detections", card.md, "--db", copy, "--model", model)
    result = run_trapcount(*args, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert query(copy, "SELECT count(*) FROM detections") == before
    assert report_totals(copy, tmp_path) == card.totals
    # Deleting an event deletes its boxes (foreign key cascade).
    connection = sqlite3.connect(copy)
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("DELETE FROM events")
    connection.commit()
    connection.close()
    assert query(copy, "SELECT count(*) FROM detections") == [(0,)]


# -- out: export megadetector ---------------------------------------------------------------


def check_spec(document: dict) -> None:
    """The published format's fields, checked by hand (the validator checks them too)."""
    assert set(document) == {
        "info",
        "detection_categories",
        "classification_categories",
        "images",
    }
    info = document["info"]
    assert isinstance(info["format_version"], str) and float(info["format_version"]) >= 1.5
    assert info["detector"].startswith("trapcount ")
    datetime.strptime(info["detection_completion_time"], "%Y-%m-%d %H:%M:%S")
    assert document["detection_categories"] == CATEGORIES
    classes = document["classification_categories"]
    assert all(key.isdigit() and value for key, value in classes.items())
    for image in document["images"]:
        assert isinstance(image["file"], str) and isinstance(image["detections"], list)
        for detection in image["detections"]:
            assert detection["category"] in CATEGORIES
            assert isinstance(detection["conf"], float) and 0 <= detection["conf"] <= 1
            x, y, w, h = detection["bbox"]
            assert 0 <= x <= x + w <= 1.0001 and 0 <= y <= y + h <= 1.0001
            for class_id, conf in detection.get("classifications", []):
                assert class_id in classes and isinstance(conf, float)


def validate_with_megadetector(path: Path, images: Path) -> None:
    validator = pytest.importorskip(
        "megadetector.postprocessing.validate_batch_results",
        reason="MegaDetector's validator: pip install --no-deps megadetector-utils jsonpickle "
        "(.ci/run does)",
    )
    options = validator.ValidateBatchResultsOptions()
    options.check_image_existence = True
    options.relative_path_base = str(images)
    results = validator.validate_batch_results(str(path), options)["validation_results"]
    assert results["errors"] == [] and results["warnings"] == [], results


@pytest.fixture(scope="module")
def exported(processed):
    """``export megadetector`` of the processed card: (its file, the command's result)."""
    _card, db, _result = processed
    out = db.parent / "export" / "trapcount-md.json"
    result = run_trapcount("export", "megadetector", "--db", db, "--out", out, cwd=db.parent)
    assert result.returncode == 0, result.stderr
    return out, result


def test_megadetectors_own_validator_accepts_the_export(processed, exported, tmp_path):
    card, _db, _result = processed
    validate_with_megadetector(exported[0], card.folder)
    # ... and it is a real check: a box naming a category the file does not list fails.
    document = json.loads(exported[0].read_text(encoding="utf-8"))
    document["images"][0]["detections"][0]["category"] = "9"
    (tmp_path / "broken.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(AssertionError, match="unmapped category 9"):
        validate_with_megadetector(tmp_path / "broken.json", card.folder)


def test_the_export_is_megadetector_output_with_the_same_boxes_and_counts(processed, exported):
    card, db, _result = processed
    out, result = exported
    boxes = sum(len(found) for found in card.expected.values())
    assert f"7 image(s), {boxes} box(es) from 2 event(s)" in result.stdout
    assert out.stat().st_mode & 0o077 == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    check_spec(document)
    classes = document["classification_categories"]
    assert {"deer", "fox", "boar", "hare"} <= set(classes.values())
    exported = {
        image["file"]: {(CATEGORIES[d["category"]], tuple(d["bbox"])) for d in image["detections"]}
        for image in document["images"]
    }
    assert exported == card.expected
    # The counts agree: per burst, the most boxes of a label in one photo is its MaxN.
    per_label: dict[str, int] = {}
    for burst in ("A_", "B_"):
        most: dict[str, int] = {}
        for image in document["images"]:
            if not image["file"].startswith(burst):
                continue
            seen: dict[str, int] = {}
            for d in image["detections"]:
                name = CATEGORIES[d["category"]]
                if name == "animal":
                    ((class_id, _conf),) = d["classifications"]
                    name = classes[class_id]
                seen[name] = seen.get(name, 0) + 1
            for name, n in seen.items():
                most[name] = max(most.get(name, 0), n)
        for name, n in most.items():
            per_label[name] = per_label.get(name, 0) + n
    assert per_label == report_totals(db, db.parent) == card.totals


def test_the_export_reads_back_in_and_counts_the_same(processed, exported, model, tmp_path):
    card, _db, _result = processed
    out, _export = exported
    again = tmp_path / "again.sqlite"
    args = ("process", card.folder, "--detections", out, "--db", again, "--model", model, "-q")
    result = run_trapcount(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert report_totals(again, tmp_path) == card.totals
    assert stored_boxes(again) == card.expected
    # The last photo: MegaDetector never saw it; the export lists only photos with boxes.
    assert "unprocessed: not in detections: 1 frame" in result.stdout


def test_the_export_takes_since_and_until_in_the_traps_time(processed, tmp_path):
    _card, db, _result = processed
    out = tmp_path / "first-burst.json"
    result = run_trapcount(
        "export",
        "megadetector",
        "--db",
        db,
        "--out",
        out,
        "--until",
        "2024-06-01T21:30:00Z",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    files = [image["file"] for image in json.loads(out.read_text())["images"]]
    assert files == [f"A_{i:04d}.JPG" for i in range(1, 5)]


# -- bad input: one line, exit 2, nothing lost ----------------------------------------------


def _bad_files(card: Card, root: Path) -> dict[str, tuple[Path, str]]:
    good = json.loads(card.md.read_text())
    cases: dict[str, tuple[Path, str]] = {}
    (root / "not-json.json").write_text("{'images': [", encoding="utf-8")
    cases["not JSON"] = (root / "not-json.json", "not JSON (line 1, column 2")
    no_images = {k: v for k, v in good.items() if k != "images"}
    (root / "no-images.json").write_text(json.dumps(no_images))
    cases["no images"] = (root / "no-images.json", "no images list")
    outside = json.loads(json.dumps(good))
    outside["images"][1]["detections"][0]["bbox"] = [0.5, 0.2, 0.7, 0.1]
    (root / "outside.json").write_text(json.dumps(outside))
    cases["box outside"] = (root / "outside.json", "images[1] (A_0002.JPG): detections[0]: bbox")
    unknown = json.loads(json.dumps(good))
    unknown["images"][4]["detections"][0]["category"] = "7"
    (root / "unknown.json").write_text(json.dumps(unknown))
    cases["unknown category"] = (root / "unknown.json", "unknown category '7'")
    old = dict(good, info={"format_version": "1.2"})
    (root / "old.json").write_text(json.dumps(old))
    cases["format 1.2"] = (root / "old.json", "format 1.2 is older than 1.3")
    other = dict(
        good,
        images=[
            {"file": f"100RECNX/DSC_{n:04d}.JPG", "detections": []}
            for n, _ in enumerate(good["images"])
        ],
    )
    (root / "other.json").write_text(json.dumps(other))
    cases["another folder's"] = (root / "other.json", "none of the 8 photos in")
    cases["missing"] = (root / "absent.json", "absent.json: MegaDetector file not found")
    return cases


CASES = [
    "not JSON",
    "no images",
    "box outside",
    "unknown category",
    "format 1.2",
    "another folder's",
    "missing",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_megadetector_file_is_one_line_and_loses_nothing(processed, model, case, tmp_path):
    card, db, _result = processed
    path, words = _bad_files(card, tmp_path)[case]
    events = query(db, "SELECT count(*) FROM events")
    boxes = query(db, "SELECT count(*) FROM detections")
    args = ("process", card.folder, "--detections", path, "--db", db, "--model", model)
    result = run_trapcount(*args, "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert words in lines[0] and "Traceback" not in result.stderr
    assert query(db, "SELECT count(*) FROM events") == events
    assert query(db, "SELECT count(*) FROM detections") == boxes
    fresh = run_trapcount(
        *args[:4], "--db", tmp_path / "new.sqlite", "--model", model, cwd=tmp_path
    )
    assert fresh.returncode == 2 and not (tmp_path / "new.sqlite").exists()


def test_detections_for_a_video_is_a_config_error(tmp_path, model):
    clip = crossings_video(tmp_path / "clip.mp4", [("deer", 1, 0.5, 2.0)], duration_s=3.0)
    md = write_md(tmp_path / "md.json", [])
    result = run_trapcount("process", clip.path, "--detections", md, "--model", model, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "is not one" in result.stderr and "image folder" in result.stderr


# -- the reader and the localiser ---------------------------------------------------------


def test_reading_any_1_3_file_tolerates_windows_paths_case_failures_and_other_categories(
    tmp_path, caplog
):
    md = write_md(
        tmp_path / "md.json",
        [
            {"file": "cam1\\IMG_0001.JPG", "detections": [box([0.1, 0.2, 0.3, 0.4], "1", 0.5)]},
            {"file": "./cam1/IMG_0002.JPG", "detections": [box([0.1, 0.2, 0.3, 0.4], "4")]},
            {"file": "cam1/IMG_0003.JPG", "failure": "Failure image access", "detections": None},
        ],
        version=1.3,
        detection_categories={"1": "animal", "2": "human", "4": "group"},
    )
    detections = read_detections(md)
    assert detections.format_version == "1.3" and detections.ignored_boxes == 1
    assert detections.lookup("cam1/img_0001.jpg") == detections.entries["cam1/IMG_0001.JPG"]
    assert detections.lookup("cam1/IMG_0002.JPG") == Entry(())
    assert detections.lookup("cam1/IMG_0003.JPG").failure == "Failure image access"
    assert detections.lookup("cam2/IMG_0001.JPG") is None
    with pytest.raises(DetectionsError, match=r"no info\.format_version"):
        read_detections(write_md(tmp_path / "v.json", [], version=None))
    with pytest.raises(DetectionsError, match=r"listed twice"):
        read_detections(write_md(tmp_path / "d.json", [{"file": "a.jpg", "detections": []}] * 2))


def test_a_file_made_on_the_folder_above_or_with_absolute_paths_still_matches(tmp_path, caplog):
    """MegaDetector run on the folder above the card ("card/A_0001.JPG"), or with absolute
    paths on another machine: the names match the photos once those folders are cut off,
    with one warning saying so."""
    from edge_agent.vision.megadetector import check_against_folder

    card = tmp_path / "card"
    (card / "100RECNX").mkdir(parents=True)
    for name in ("A_0001.JPG", "100RECNX/A_0002.JPG"):
        (card / name).write_bytes(b"\xff\xd8")
    for prefix in ("card/", "C:\\Users\\me\\trap\\card\\"):
        images = [
            {"file": prefix + "A_0001.JPG", "detections": []},
            {"file": prefix + "100RECNX/A_0002.JPG", "detections": []},
        ]
        detections = read_detections(write_md(tmp_path / "md.json", images))
        caplog.clear()
        assert check_against_folder(detections, card) == 0
        assert sorted(detections.entries) == ["100RECNX/A_0002.JPG", "A_0001.JPG"]
        (warning,) = [r.getMessage() for r in caplog.records]
        assert "named from another folder" in warning


def test_pixel_boxes_stay_inside_the_frame():
    assert pixel_box((0.0, 0.0, 1.0, 1.0), 320, 240) == (0, 0, 320, 240)
    assert pixel_box((0.5, 0.25, 0.25, 0.5), 320, 240) == (160, 60, 80, 120)
    assert pixel_box((0.999, 0.999, 0.0, 0.0), 320, 240) == (319, 239, 1, 1)


def test_two_overlapping_boxes_are_two_animals_not_fragments_of_one():
    """Motion splits one animal into pieces and the tracker joins them; a detector's boxes
    are whole animals: a calf half behind its mother is a second animal."""
    frame = np.full((240, 320, 3), 90, np.uint8)
    mother, calf = (0.3, 0.4, 0.3, 0.3), (0.45, 0.5, 0.12, 0.15)
    entries = {
        "1.jpg": Entry((scenes_box(mother),)),
        "2.jpg": Entry((scenes_box(mother), scenes_box(calf))),
        "3.jpg": Entry((scenes_box(mother), scenes_box(calf))),
    }
    localiser = MegaDetectorLocaliser(Detections(Path("md.json"), "1.5", "x", entries), 0.2)
    pipeline = Pipeline(Settings(), None, localiser=localiser)
    events = []
    for i, file in enumerate(entries):
        events += pipeline.process(START + timedelta(seconds=i), frame, file)
    events += pipeline.close()
    assert [e.counts for e in events] == [{"animal": 2}]
    sightings = [len(t.sightings) for t in events[0].tracks]
    assert sorted(sightings) == [2, 3]


def scenes_box(bbox: tuple[float, float, float, float]):
    from edge_agent.vision.megadetector import DetectorBox

    return DetectorBox("animal", 0.9, bbox)


def test_a_clip_keeps_one_box_per_track_per_second_and_its_best(tmp_path):
    clip = crossings_video(tmp_path / "clip.mp4", [("deer", 1, 0.5, 4.0)], duration_s=6.0)
    settings = Settings.model_validate({"source": {"uri": str(clip.path)}})
    from edge_agent.capture.factory import open_source

    pipeline = Pipeline(settings, None)
    with open_source(settings.source, start_time=START) as source:
        events = list(pipeline.run(source))
    assert [e.counts for e in events] == [{"animal": 1}]
    with Store.open(tmp_path / "t.sqlite") as store:
        deployment = store.ensure_deployment(TrapSettings())
        store.write_event(events[0], deployment)
    rows = query(tmp_path / "t.sqlite", "SELECT file, frame, detector, category, w FROM detections")
    (track,) = events[0].tracks
    assert 3 <= len(rows) <= track.duration_s + 2
    assert {(file, detector, category) for file, _, detector, category, _ in rows} == {
        (None, "motion", "animal")
    }
    frames = [frame for _, frame, *_ in rows]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    # The frame the media keeper keeps of it (largest box, counted) has its box.
    assert track.best_sighting.frame in frames
