"""COCO Camera Traps sources (trainer.cct, trainer.cct_plan, trainer.crops) on small files the
tests write: real JPEG frames with painted animals, boxes, image-level labels with a
MegaDetector file, sequences, locations, empty frames and categories mapped away."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_agent.vision.classifier import Classifier, crop_square
from tests.trainer.conftest import synthetic_image
from trainer.cct import CocoSource, coco_specs
from trainer.cli import SPLIT_BY, main
from trainer.crops import background_boxes, read_coco, whole_square
from trainer.data import DataError, load_datasets, stratified_split

SIZE = (32, 32)
WIDTH, HEIGHT = 120, 90
LOCATIONS = 6
CATEGORIES = [
    {"id": 1, "name": "deer"},
    {"id": 2, "name": "Red Fox"},
    {"id": 3, "name": "owl"},
    {"id": 4, "name": "bobcat"},
    {"id": 5, "name": "empty"},
    {"id": 6, "name": "person"},
]
MAP = (
    "# field categories -> model labels\nsource category,label\nRed Fox,fox\nbobcat,drop\nperson,\n"
)


def paint(rng: np.random.Generator, animals: list[tuple[str, list[float]]]) -> np.ndarray:
    """An RGB frame: a noisy dark-green background with each animal painted in its box."""
    frame = np.clip(rng.normal((60, 80, 50), 12, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    for label, (x, y, w, h) in animals:
        patch = synthetic_image(label, rng, 32)
        x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
        frame[y0:y1, x0:x1] = cv2.resize(patch, (x1 - x0, y1 - y0))
    return frame


def write_cct(root: Path, seed: int = 0) -> Path:
    """``root/cct.json`` with frames under ``root/frames``, ``root/md.json`` (MegaDetector
    boxes for the image-level labels) and ``root/map.csv``. Per location: a deer, a fox
    and an owl box, a frame with a deer and an owl, an empty frame and a bobcat (dropped);
    then frames with a sequence only, and image-level labels without location or sequence."""
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    images, annotations, md = [], [], []

    def add(animals, category_ids, location=None, seq=None, boxed=True) -> int:
        image_id = len(images) + 1
        name = f"frames/f{image_id:03d}.jpg"
        Image.fromarray(paint(rng, animals)).save(root / name, quality=95)
        entry = {"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT}
        if location is not None:
            entry["location"] = location
        if seq is not None:
            entry["seq_id"] = seq
            entry["frame_num"] = 1
        images.append(entry)
        for k, cat in enumerate(category_ids):
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": cat}
            if boxed and k < len(animals):
                ann["bbox"] = animals[k][1]
            annotations.append(ann)
        return image_id

    def box() -> list[float]:
        w, h = rng.uniform(18, 40), rng.uniform(18, 40)
        return [round(rng.uniform(0, WIDTH - w), 1), round(rng.uniform(0, HEIGHT - h), 1),
                round(w, 1), round(h, 1)]  # fmt: skip

    for n in range(LOCATIONS):
        where = f"site-{n}"
        add([("deer", box())], [1], where, f"{where}-a")
        add([("fox", box())], [2], where, f"{where}-a")
        add([("owl", box())], [3], where, f"{where}-b")
        add([("deer", [2, 2, 30, 30]), ("owl", [70, 40, 30, 30])], [1, 3], where, f"{where}-b")
        add([], [5], where, f"{where}-c")
        add([("fox", box())], [4], where, f"{where}-c")  # a bobcat, dropped by the map
    for n in range(4):
        add([("deer", box())], [1], None, f"seq-only-{n // 2}")
        add([("fox", box())], [2], None, f"seq-only-{n // 2}")
    # image-level labels: MegaDetector boxes (an animal above the threshold, one below, a
    # person), one frame MegaDetector missed, one it never saw
    owl = add([("owl", [60, 20, 36, 36])], [3], boxed=False)
    md.append({"file": f"frames/f{owl:03d}.jpg", "detections": [
        {"category": "1", "conf": 0.9, "bbox": [0.5, 20 / 90, 0.3, 0.4]},
        {"category": "1", "conf": 0.1, "bbox": [0.0, 0.0, 0.2, 0.2]},
        {"category": "2", "conf": 0.95, "bbox": [0.1, 0.1, 0.2, 0.5]},
    ]})  # fmt: skip
    missed = add([("deer", [10, 10, 60, 60])], [1], boxed=False)
    md.append({"file": f"frames/f{missed:03d}.jpg", "detections": [
        {"category": "1", "conf": 0.05, "bbox": [0.1, 0.1, 0.5, 0.6]},
    ]})  # fmt: skip
    add([("fox", [40, 20, 50, 50])], [2], boxed=False)
    document = {"info": {"version": "1.0"}, "images": images, "categories": CATEGORIES,
                "annotations": annotations}  # fmt: skip
    (root / "cct.json").write_text(json.dumps(document))
    (root / "md.json").write_text(json.dumps({
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": md,
    }))  # fmt: skip
    (root / "map.csv").write_text(MAP)
    return root / "cct.json"


@pytest.fixture(scope="module")
def cct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cct(tmp_path_factory.mktemp("cct"))


def spec(path: Path, **options) -> dict:
    return {"coco": str(path), "label_map": str(path.parent / "map.csv"), **options}


def frame_bgr(path: Path) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)


def crops_of(crops, cct: Path, image_id: int) -> list[int]:
    return [i for i, key in enumerate(crops.frames) if key.endswith(f"#{image_id}")]


# -- crops and labels ----------------------------------------------------------------------------


def test_crops_are_the_traps_square_crops_under_mapped_labels(cct: Path, caplog):
    boxes = str(cct.parent / "md.json")
    with caplog.at_level(logging.INFO, logger="trapcount.trainer"):
        crops = read_coco(CocoSource.from_spec(spec(cct, boxes=[boxes])), SIZE, None)
    document = json.loads(cct.read_text())
    # 6 locations x (deer, fox, owl, deer + owl); 8 sequence-only; 1 MegaDetector owl, 2 whole
    assert len(crops.names) == LOCATIONS * 5 + 8 + 3
    assert sorted(set(crops.names)) == ["deer", "fox", "owl"]  # bobcat, empty and person gone
    assert dict(crops.kinds) == {"box": LOCATIONS * 5 + 8, "megadetector": 1, "whole": 2}
    assert crops.images.shape[1:] == (*SIZE, 3) and crops.images.dtype == np.uint8
    # a box: exactly what the trap's classifier cuts around it
    first = document["annotations"][0]
    index = crops_of(crops, cct, first["image_id"])
    frame = frame_bgr(cct.parent / document["images"][0]["file_name"])
    assert np.array_equal(crops.images[index[0]], crop_square(frame, first["bbox"], SIZE))
    assert crops.names[index[0]] == "deer" and crops.locations[index[0]] == "site-0"
    # the image-level owl: MegaDetector's animal box above 0.2 only, in pixels
    owl = next(i for i in document["images"] if i["id"] == len(document["images"]) - 2)
    (only,) = crops_of(crops, cct, owl["id"])
    expected = crop_square(frame_bgr(cct.parent / owl["file_name"]), (60, 20, 36, 36), SIZE)
    assert np.array_equal(crops.images[only], expected) and crops.names[only] == "owl"
    # below the threshold, or not in the MegaDetector file: the whole frame, padded square
    for image in document["images"][-2:]:
        (whole,) = crops_of(crops, cct, image["id"])
        assert np.array_equal(
            crops.images[whole], whole_square(frame_bgr(cct.parent / image["file_name"]), SIZE)
        )
    assert "skipped" in caplog.text and "empty frames (give --empty-as LABEL" in caplog.text
    assert f"{LOCATIONS} annotations dropped by the label map" in caplog.text


def test_empty_frames_become_background_crops_only_when_asked(cct: Path):
    crops = read_coco(CocoSource.from_spec(spec(cct, empty_as="empty")), SIZE, None)
    empty = [i for i, name in enumerate(crops.names) if name == "empty"]
    assert len(empty) == 2 * LOCATIONS and crops.kinds["empty"] == 2 * LOCATIONS
    document = json.loads(cct.read_text())
    image = next(i for i in document["images"] if i["id"] == 5)  # site-0's empty frame
    frame = frame_bgr(cct.parent / image["file_name"])
    boxes = background_boxes(image["file_name"], WIDTH, HEIGHT)
    got = [crops.images[i] for i in crops_of(crops, cct, 5)]
    assert all(
        np.array_equal(a, crop_square(frame, b, SIZE)) for a, b in zip(got, boxes, strict=True)
    )
    for x, y, w, h in boxes:  # inside the frame, the sizes of motion blobs
        assert x >= 0 and x + w <= WIDTH and y >= 0 and y + h <= HEIGHT
        assert 0.002 * WIDTH * HEIGHT <= w * h <= 0.25 * WIDTH * HEIGHT + 1e-6


def test_category_names_are_labels_without_a_map_and_must_keep_the_label_rules(cct: Path):
    with pytest.raises(DataError) as info:
        load_datasets([cct])
    assert str(info.value).startswith(
        "category 'Red Fox' in cct.json is not a valid label (lower-case letters"
    )
    assert "map it with --label-map, e.g. a row 'Red Fox,red_fox'" in str(info.value)
    rows = cct.parent / "rest.csv"  # a * row: every category the map does not name
    rows.write_text("Red Fox,fox\n*,other\n")
    data = load_datasets([{"coco": str(cct), "label_map": str(rows)}], use_cache=False)
    assert data.classes == ["fox", "other"]  # deer, owl, bobcat and person are "other"


# -- splits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("split_by", SPLIT_BY)
def test_no_location_or_sequence_is_on_both_sides(cct: Path, split_by: str):
    data = load_datasets([spec(cct, split_by=split_by)], use_cache=False)
    document = json.loads(cct.read_text())
    for seed in range(4):
        split = stratified_split(data, 0.25, seed)
        train, val = set(split.train.groups), set(split.val.groups)
        assert train.isdisjoint(val) and val
        kinds = {key.split(":")[0] for key in train | val}
        assert kinds == {"location": {"location", "seq", "image"}, "seq": {"seq", "image"},
                         "image": {"image"}}[split_by]  # fmt: skip
        assert split.groups["images"] == {"train": len(split.train), "val": len(split.val)}
    # every location and sequence of the file is whole on one side (location split)
    if split_by == "location":
        locations = {k for k in val if k.startswith("location:")}
        assert 1 <= len(locations) < LOCATIONS
        assert {i["location"] for i in document["images"] if "location" in i} == {
            k.split(":", 1)[1] for k in train | val if k.startswith("location:")
        }


def test_cifar_keeps_its_stratified_split_and_a_small_source_is_repeated(
    cct: Path, cifar_batches: Path
):
    cifar = stratified_split(load_datasets([cifar_batches]), 0.2, 0)
    mixed = load_datasets([cifar_batches, spec(cct, repeat=3)], use_cache=False)
    split = stratified_split(mixed, 0.2, 0)
    coco_train = split.train.groups != ""
    assert (~coco_train).sum() == len(cifar.train)  # per class, as without the COCO source
    assert (split.val.groups == "").sum() == len(cifar.val)
    assert coco_train.sum() == 3 * split.groups["images"]["train"]  # repeated 3 times
    assert (split.val.groups != "").sum() == split.groups["images"]["val"]  # never repeated
    assert set(split.train.groups[coco_train]).isdisjoint(split.val.groups)
    assert split.groups["location"]["val"] >= 1


# -- the cache ------------------------------------------------------------------------------------


def test_crops_are_cached_by_file_boxes_map_and_options(cct: Path, tmp_path: Path, caplog):
    root = tmp_path / "data"
    shutil.copytree(cct.parent, root)
    source = CocoSource.from_spec(spec(root / "cct.json", boxes=[str(root / "md.json")]))
    first = read_coco(source, SIZE, tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="trapcount.trainer"):
        again = read_coco(source, SIZE, tmp_path / "cache")
    assert "cached" in caplog.text
    assert np.array_equal(first.images, again.images) and first.names == again.names
    assert np.array_equal(first.frames, again.frames) and first.kinds == again.kinds
    assert first.skipped.counts == again.skipped.counts
    (root / "map.csv").write_text(MAP + "owl,drop\n")  # another map: cut again
    third = read_coco(source, SIZE, tmp_path / "cache")
    assert "owl" not in third.names
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    read_coco(CocoSource.from_spec(spec(root / "cct.json")), (24, 24), tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


# -- bad input ------------------------------------------------------------------------------------


def _document(cct: Path) -> dict:
    return json.loads(cct.read_text())


def _broken(cct: Path, tmp_path: Path, change) -> Path:
    """A copy of the test set whose cct.json ``change`` altered (a text: replaced)."""
    root = tmp_path / "broken"
    shutil.copytree(cct.parent, root)
    document = _document(cct)
    if isinstance(change, str):
        (root / "cct.json").write_text(change)
    else:
        change(document)
        (root / "cct.json").write_text(json.dumps(document))
    return root / "cct.json"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('{"images": [', "is not JSON (line 1, column"),
        ("[1, 2]", "is not COCO Camera Traps (not a JSON object)"),
        (lambda d: d.pop("annotations"), "is not COCO Camera Traps (no 'annotations' list)"),
        (lambda d: d["images"][3].pop("file_name"), "cct.json: image #3 has no 'file_name'"),
        (lambda d: d["images"][4].update(id=1), "cct.json: image id 1 is there twice"),
        (lambda d: d["categories"].append({"id": 1}), "category #6 needs an 'id' and a 'name'"),
        (lambda d: d["annotations"].append(7), "cct.json: annotation #"),
        (
            lambda d: [i.update(file_name="elsewhere/" + i["file_name"]) for i in d["images"]],
            "none of the first 20 images is there (e.g. ",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-annotations",
        "no-file-name",
        "duplicate-id",
        "bad-category",
        "bad-annotation",
        "wrong-root",
    ],
)
def test_a_malformed_file_is_one_line(cct: Path, tmp_path: Path, change, message: str):
    broken = _broken(cct, tmp_path, change)
    with pytest.raises(DataError) as info:
        load_datasets([spec(broken)], use_cache=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unusable_items_are_counted_skips_with_a_summary(cct: Path, tmp_path: Path, caplog):
    def change(d):
        d["annotations"][0]["category_id"] = 99  # unknown category
        d["annotations"][1]["bbox"] = [500, 400, 10, 10]  # outside the 120x90 frame
        d["annotations"][2]["bbox"] = [1, 2, "x", 4]  # malformed
        d["annotations"][3]["image_id"] = 12345
        d["images"][6]["width"] = 240  # declared twice as wide as the file: boxes scaled

    broken = _broken(cct, tmp_path, change)
    (broken.parent / "frames" / "f008.jpg").unlink()  # site-1's fox: missing
    (broken.parent / "frames" / "f009.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with caplog.at_level(logging.INFO, logger="trapcount.trainer"):
        data = load_datasets([spec(broken)], use_cache=False)
    assert data.skipped == 2  # the missing and the unreadable frame
    summary = next(r.message for r in caplog.records if "skipped " in r.message)
    for part in (
        "1 annotations with an unknown category id (e.g. 99)",
        "1 boxes outside the image (e.g. frames/f002.jpg: [500.0, 400.0, 10.0, 10.0])",
        "1 malformed boxes (e.g. frames/f003.jpg",
        "1 annotations of an unknown image id (e.g. 12345)",
        "1 missing images",
        "1 unreadable images",
        "frames whose size differs from the width and height given (boxes scaled)",
    ):
        assert part in summary, summary
    assert len(data) == LOCATIONS * 5 + 8 + 3 - 6


@pytest.mark.parametrize(
    ("options", "files", "message"),
    [
        ({"label_map": "nomap.csv"}, {}, "label map not found: "),
        ({"label_map": "bad.csv"}, {"bad.csv": "owl,owl\nRed Fox,Red Fox\n"},
         "bad.csv line 2: label 'Red Fox' is not a valid label"),
        ({"label_map": "bad.csv"}, {"bad.csv": "owl,a,b\n"}, "expected 'source category,label'"),
        ({"boxes": ["md.json"]}, {"md.json": '{"images": [{"file": "a.jpg", "detections": '
                                              '[{"category": "1", "bbox": [0, 0, 1]}]}]}'},
         "detection #0 of 'a.jpg' is malformed"),
        ({"boxes": ["md.json"]}, {"md.json": '{"no": "images"}'}, "is not MegaDetector batch"),
        ({"empty_as": "Empty!"}, {}, "--empty-as 'Empty!' is not a valid label"),
        ({"split_by": "camera"}, {}, "--split-by 'camera': choose location, seq, image"),
    ],
    ids=["missing-map", "map-bad-label", "map-bad-row", "md-bad-detection", "md-not-md",
         "bad-empty-label", "bad-split-by"],
)  # fmt: skip
def test_bad_options_and_side_files_are_one_line(
    cct: Path, tmp_path: Path, options: dict, files: dict, message: str
):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    resolved = {
        k: ([str(tmp_path / p) for p in v] if isinstance(v, list) else str(tmp_path / v))
        if k in ("label_map", "boxes") else v
        for k, v in options.items()
    }  # fmt: skip
    with pytest.raises(DataError) as info:
        load_datasets([{**spec(cct), **resolved}], use_cache=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_megadetector_paths_match_from_a_folder_above_or_below(cct: Path):
    from trainer.cct import MegaDetectorBoxes

    boxes = MegaDetectorBoxes()
    boxes.add("survey/frames/a.jpg", [("1", 0.9, (0, 0, 1, 1))])
    boxes.add("b.jpg", [("1", 0.8, (0, 0, 1, 1))])
    boxes.add("x/c.jpg", [])
    boxes.add("y/c.jpg", [])
    assert boxes.lookup("frames/a.jpg")[0][1] == 0.9  # MegaDetector ran above the root
    assert boxes.lookup("frames\\b.jpg")[0][1] == 0.8  # ... or below it
    assert boxes.lookup("c.jpg") is None  # two files end that way: none is taken
    assert boxes.lookup("d.jpg") is None


# -- the CLI: train, export, the edge agent loads it ----------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_on_a_cct_file_exports_a_model_the_trap_loads(cct: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = invoke(
        "train", "--data", cct, "--label-map", cct.parent / "map.csv", "--boxes",
        cct.parent / "md.json", "--empty-as", "empty", "--data-repeat", "2", "--arch", "tiny",
        "--epochs", "2", "--val-split", "0.25", "--max-quant-drop", "100", "--out", out,
        "--stop-after", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    assert "split by group (train / validation): location " in result.stderr
    resumed = invoke("train", "--out", out, "--resume")  # the recorded spec, from the cache
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert "cached" in resumed.stderr and "exported" in resumed.output
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["labels"] == ["deer", "empty", "fox", "owl"]
    (recorded,) = manifest["training"]["datasets"]
    assert recorded["coco"] == str(cct) and recorded["split_by"] == "location"
    assert recorded["empty_as"] == "empty" and recorded["repeat"] == 2
    split = manifest["training"]["split"]
    assert split["location"]["val"] >= 1
    assert manifest["training"]["n_train"] == 2 * split["images"]["train"]
    assert manifest["training"]["n_val"] == split["images"]["val"]
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == split and config["status"] == "finished"
    with Classifier(out) as classifier:
        assert classifier.labels == manifest["labels"]
        frame = frame_bgr(cct.parent / "frames" / "f001.jpg")
        assert len(classifier.classify_crops(frame, [(10, 10, 40, 40)])) == 1
    # evaluate, given the bare .json, reads it with the recorded options: the same split
    evaluated = invoke("evaluate", out, "--data", cct)
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    assert f"validation split (0.25, seed 0), {split['images']['val']} images" in evaluated.output


def test_a_bad_cct_file_leaves_no_run_folder(cct: Path, tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": []')
    result = invoke("train", "--data", broken, "--arch", "tiny", "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "is not JSON" in errors[0], result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "run").exists()


def test_coco_options_apply_to_the_json_sources_only(cct: Path, caplog):
    specs = coco_specs(["a/", cct, "b.tar.gz"], empty_as="empty", boxes=(), repeat=None)
    assert specs[0] == "a/" and specs[2] == "b.tar.gz"
    assert specs[1]["coco"] == str(cct) and specs[1]["empty_as"] == "empty"
    assert coco_specs([cct]) == [str(cct)]  # no option: the bare path, read with defaults
    with caplog.at_level(logging.WARNING, logger="trapcount.trainer"):
        assert coco_specs(["a/"], label_map="m.csv") == ["a/"]
    assert "--label-map apply only to COCO Camera Traps .json --data" in caplog.text


def test_the_cli_split_choices_are_the_loaders():
    from trainer.cct import SPLIT_BY as LOADER_SPLIT_BY

    assert SPLIT_BY == LOADER_SPLIT_BY


# -- trapcount collect export writes the same shape -----------------------------------------------


def test_collect_export_cct_json_gives_the_crops_of_the_class_folders(tmp_path: Path):
    from edge_agent.cli import cli
    from edge_agent.config import TrapSettings
    from edge_agent.counting.events import ClosedEvent
    from edge_agent.store.database import Store

    rng = np.random.default_rng(5)
    start = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    db = tmp_path / "trap.sqlite"
    (tmp_path / "media").mkdir()
    with Store.open(db) as store:
        deployment = store.ensure_deployment(TrapSettings())
        event = store.write_event(ClosedEvent(start, start, 1, (), None), deployment)
        for i, label in enumerate(["deer", "fox", "deer", "owl", "person", "fox"]):
            path = tmp_path / "media" / f"crop{i}.jpg"
            size = 48 + 8 * (i % 3)  # kept crops are squares of any side
            Image.fromarray(synthetic_image(label if label != "person" else "owl", rng, size)).save(
                path, quality=90
            )
            store.add_media(
                deployment_id=deployment, event_id=event if i % 2 else None,
                time=start + timedelta(seconds=i), kind="crop", path=str(path), sha256="0" * 64,
                bytes=path.stat().st_size, label=label, confidence=0.9, disagreed=False,
                privacy_status="clear", reviewed_label="badger" if i == 5 else None,
            )  # fmt: skip
        trap = store.deployments()[0].trap_id
    out = tmp_path / "dataset"
    result = CliRunner().invoke(cli, ["collect", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "cct.json").read_text())
    assert [c["name"] for c in document["categories"]] == ["badger", "deer", "fox", "owl"]
    assert len(document["images"]) == len(document["annotations"]) == 5  # no person
    first = document["images"][0]
    assert (out / first["file_name"]).is_file() and first["location"] == trap
    assert (first["width"], first["height"]) == (48, 48) and "bbox" not in document["annotations"][
        0
    ]
    assert "seq_id" not in first and document["images"][1]["seq_id"] == f"{trap}:{event}"
    assert (out / "cct.json").stat().st_mode & 0o077 == 0
    # the trainer reads the same crops, labels and all, from the file as from the folders
    folders = load_datasets([out], use_cache=False)
    cct = load_datasets([out / "cct.json"], use_cache=False)
    assert folders.classes == cct.classes == ["badger", "deer", "fox", "owl"]

    def rows(data):
        return sorted(
            (data.classes[y], x.tobytes()) for x, y in zip(data.images, data.labels, strict=True)
        )

    assert rows(folders) == rows(cct)
    assert set(cct.groups) == {f"location:{trap}"}


def test_collect_export_lists_a_kept_frame_with_its_box_instead_of_the_crop(tmp_path: Path):
    """With media.keep_frames the media keeper writes the track's crop and its full frame
    (same event, time and box): cct.json lists the frame with the box, as LILA's boxed
    images are, so the trainer cuts the animal at its own input size; a crop kept without
    a frame, and a frame that was blurred, leave the crop listed whole."""
    from edge_agent.cli import cli
    from edge_agent.config import TrapSettings
    from edge_agent.counting.events import ClosedEvent
    from edge_agent.store.database import Store

    rng = np.random.default_rng(6)
    start = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    db = tmp_path / "trap.sqlite"
    media = tmp_path / "media"
    media.mkdir()
    frame = np.full((240, 320, 3), 90, np.uint8)
    box = (200, 60, 80, 120)  # a bright animal on grey ground, right of centre
    x, y, w, h = box
    frame[y : y + h, x : x + w] = synthetic_image("deer", rng, 120)[:, 20:100, ::-1]
    cv2.imwrite(str(media / "frame.png"), frame)
    kept = [
        ("deer", "crop", 0, box, "clear"),
        ("deer", "frame", 0, box, "clear"),
        ("fox", "crop", 1, (10, 10, 50, 50), "clear"),  # no frame kept
        ("owl", "crop", 2, (100, 100, 40, 40), "clear"),
        ("owl", "frame", 2, (100, 100, 40, 40), "blurred"),  # written blurred: not trained on
    ]
    with Store.open(db) as store:
        deployment = store.ensure_deployment(TrapSettings())
        event = store.write_event(ClosedEvent(start, start, 1, (), None), deployment)
        for i, (label, kind, second, (bx, by, bw, bh), privacy) in enumerate(kept):
            path = media / ("frame.png" if (label, kind) == ("deer", "frame") else f"m{i}.jpg")
            if not path.exists():
                Image.fromarray(synthetic_image(label, rng, 48)).save(path, quality=90)
            store.add_media(
                deployment_id=deployment, event_id=event, time=start + timedelta(seconds=second),
                kind=kind, path=str(path), sha256="0" * 64, bytes=path.stat().st_size,
                label=label, confidence=0.9, disagreed=False, privacy_status=privacy,
                box_x=bx, box_y=by, box_w=bw, box_h=bh,
            )  # fmt: skip
    out = tmp_path / "dataset"
    result = CliRunner().invoke(cli, ["collect", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "cct.json").read_text())
    images = {image["id"]: image for image in document["images"]}
    names = {c["id"]: c["name"] for c in document["categories"]}
    listed = [
        (names[a["category_id"]], images[a["image_id"]]["file_name"].split("/")[0], a.get("bbox"))
        for a in document["annotations"]
    ]
    assert sorted(listed, key=str) == sorted(
        [("deer", "frames", list(box)), ("fox", "fox", None), ("owl", "owl", None)], key=str
    )
    deer = next(i for i in document["images"] if i["file_name"].startswith("frames/"))
    assert (out / deer["file_name"]).read_bytes() == (media / "frame.png").read_bytes()
    assert (deer["width"], deer["height"]) == (320, 240)
    assert sorted(p.name for p in (out / "deer").iterdir()) == ["m1-m0.jpg"]  # folders: crops
    # The trainer cuts the box, not the whole frame.
    data = load_datasets([out / "cct.json"], use_cache=False)
    trained = data.images[data.classes.index("deer") == data.labels][0].astype(np.int16)
    np.testing.assert_array_equal(trained, crop_square(frame, box, (32, 32)))
    assert np.abs(trained - whole_square(frame, (32, 32)).astype(np.int16)).mean() > 10
