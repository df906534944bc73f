"""The real field set: what trapcount counts on real camera-trap photos and clips.

Over ``../shared/data/field-dev`` (92 real photos and 5 real clips with ``truth.json``; see
its README; skipped with a message when absent), with a model folder (default the shipped
``models/default``) and the default settings:

1. **Photos through the pipeline**, the way ``trapcount process`` runs them (burst
   localiser, tracker, classifier, privacy guard), two ways: each photo **alone** (a single
   photo from an unseen camera: nothing to compare it with, so ``unprocessed: no
   reference``) and the whole set as **one folder** (photos of one camera give each other
   empty views). Per photo: counted anything, unprocessed, the labels counted. Figures:
   animal-present recall (photos with an animal in which something was counted), empty
   photos with anything counted, count error where ``count`` is known, label accuracy of
   what was counted (``label`` or ``also_ok``; for ``other``, ``unknown`` or ``other`` is
   right), ``unknown`` rate on ``other``; day and IR (``vision.illumination``) apart.
2. **Clips**: each video through the motion localiser: counted anything, its labels.
3. **Crops** (with ``benchmarks/field_boxes.json``, boxes drawn by hand by looking at each
   photo): every box cropped as the trap crops it (square, 10% margin) and classified:
   label accuracy (top label; and after the confidence threshold), the ``unknown`` rate on
   ``other`` at several thresholds (to choose ``classifier.confidence_threshold``), day and
   IR apart.
4. **Real bursts** (``--bursts``, development only): the Reconyx sequences of
   ``../shared/data/field-train`` (Missouri Camera Traps: 3-40 frames of one trigger, boxes
   on every frame with an animal), each sequence as a folder of its own with file times one
   second apart (the frames carry no EXIF), through the pipeline as ``trapcount process``
   runs it: the burst localiser with nothing but the burst itself to compare with (no
   background bank), the real case of the field issue's heron. Per sequence: counted
   anything, the count (MaxN summed over labels) against the most boxes on one frame.
   field-train is training data (the shipped model was fine-tuned on its crops), so the
   labels counted here are not a measurement. Localising and counting are a development
   figure: some of the burst localiser's defaults (the quiet-burst level, the
   corroboration within two photos) were chosen by measuring them here.

   With ``--cameras`` also **by camera**: the sequences of each location with two or more
   (14 cameras, 41 sequences) fed as a trap sees them, one folder with an hour between
   sequences, so that the background bank learns each camera's empty views from its
   other triggers; each sequence's count against the same sequence alone.

    .venv/bin/python benchmarks/bench_field.py
    .venv/bin/python benchmarks/bench_field.py --skip-pipeline --bursts
    .venv/bin/python benchmarks/bench_field.py --skip-pipeline --bursts --cameras
    .venv/bin/python benchmarks/bench_field.py --model runs/field/export
    .venv/bin/python benchmarks/bench_field.py --skip-pipeline --bursts --config my.toml

``--config``: a trapcount configuration instead of the defaults, to measure a setting
before changing it (for example ``[motion] threshold = 12``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.capture.factory import open_source  # noqa: E402
from edge_agent.config import ConfigError, Settings, load_config  # noqa: E402
from edge_agent.counting.pipeline import Pipeline  # noqa: E402
from edge_agent.labels import UNKNOWN  # noqa: E402
from edge_agent.service.model import default_model_dir, load_classifier  # noqa: E402
from edge_agent.text import format_table  # noqa: E402
from edge_agent.vision.classifier import Classifier  # noqa: E402
from edge_agent.vision.illumination import IR, illumination_of  # noqa: E402
from edge_agent.vision.privacy import PrivacyGuard  # noqa: E402

FIELD = ROOT.parent / "shared" / "data" / "field-dev"
FIELD_TRAIN = ROOT.parent / "shared" / "data" / "field-train"
BOXES = ROOT / "benchmarks" / "field_boxes.json"
START = 1_700_000_000  # file times given to the photos (no EXIF), seconds since the epoch
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
OTHER = "other"
EMPTY = "empty"


def ok_labels(entry: dict[str, Any]) -> set[str]:
    """The answers that are right for a truth entry: its label, ``also_ok``, and for a
    species outside the model's labels (``other``) ``unknown`` or ``other``."""
    ok = {entry["label"], *entry.get("also_ok", [])}
    if entry["label"] == OTHER:
        ok |= {UNKNOWN, OTHER}
    return ok


def light(image: Any) -> str:
    return "ir" if illumination_of(image) == IR else "day"


# -- 1. photos through the pipeline ----------------------------------------------------


def counted(folder: Path, settings: Settings, classifier: Classifier) -> tuple[dict, set[str]]:
    """{file name: Counter(label: MaxN summed over its events)} for a folder run through
    the pipeline, and the names of the photos that were unprocessed."""
    settings = settings.model_copy(
        update={"source": settings.source.model_copy(update={"uri": str(folder)})}
    )
    pipeline = Pipeline(settings, classifier, privacy=PrivacyGuard(settings.privacy))
    names: dict[Any, str] = {}
    per_photo: dict[str, Counter] = defaultdict(Counter)
    with open_source(settings.source) as source:
        for timestamp, _path, _origin in source.items:  # type: ignore[attr-defined]
            names.setdefault(timestamp, _path.name)
        events = list(pipeline.run(source))
    for event in events:
        for observation in event.observations:
            per_photo[names.get(event.start, "?")][observation.label] += observation.max_n
    unprocessed = {names.get(when, "?") for when, _why in pipeline.unprocessed}
    return dict(per_photo), unprocessed


def photo_rows(truth: dict[str, Any], results: dict[str, Counter], unprocessed: set[str]):
    """Per photo: (key, light, truth entry, labels counted, unprocessed)."""
    for key, entry in truth.items():
        name = Path(key).name
        yield key, entry, results.get(name, Counter()), name in unprocessed


def photo_figures(rows: Iterable, lights: dict[str, str]) -> list[list[Any]]:
    table = []
    for look in ("day", "ir", "all"):
        chosen = [r for r in rows if look == "all" or lights[r[0]] == look]
        animals = [r for r in chosen if r[1]["label"] not in (EMPTY,)]
        empties = [r for r in chosen if r[1]["label"] == EMPTY]
        found = [r for r in animals if sum(r[2].values())]
        right = [r for r in found if r[2].most_common(1)[0][0] in ok_labels(r[1])]
        others = [r for r in found if r[1]["label"] == OTHER]
        unknown_other = [r for r in others if r[2].most_common(1)[0][0] in (UNKNOWN, OTHER)]
        known = [r for r in chosen if "count" in r[1]]
        error = sum(abs(sum(r[2].values()) - r[1]["count"]) for r in known)
        table.append(
            [
                look,
                len(chosen),
                sum(1 for r in chosen if r[3]),
                f"{len(found)}/{len(animals)}",
                f"{sum(1 for r in empties if sum(r[2].values()))}/{len(empties)}",
                f"{error}/{len(known)}",
                f"{len(right)}/{len(found)}",
                f"{len(unknown_other)}/{len(others)}",
            ]
        )
    return table


PHOTO_COLUMNS = [
    "photos",
    "n",
    "unprocessed",
    "animal found",
    "empty counted",
    "count error/photos",
    "label right/found",
    "other->unknown",
]


def run_photos(field: Path, truth: dict, settings: Settings, classifier: Classifier) -> None:
    photos = {k: v for k, v in truth.items() if not k.startswith("video/")}
    lights = {key: light(cv2.imread(str(field / key))) for key in photos}
    with tempfile.TemporaryDirectory() as tmp:
        # Alone: each photo in a folder of its own.
        alone: dict[str, Counter] = {}
        alone_unprocessed: set[str] = set()
        for key in photos:
            folder = Path(tmp) / "alone" / Path(key).stem
            folder.mkdir(parents=True)
            shutil.copy(field / key, folder / Path(key).name)
            result, unprocessed = counted(folder, settings, classifier)
            alone.update(result)
            if unprocessed:
                alone_unprocessed.add(Path(key).name)
        # Together: the set as one folder. The photos carry no EXIF (the set's README): each
        # gets a file time an hour after the one before, in name order (so one camera's
        # photos come one after the other), a trigger of its own.
        together_dir = Path(tmp) / "together"
        together_dir.mkdir()
        for hour, key in enumerate(sorted(photos, key=lambda k: Path(k).name)):
            target = together_dir / Path(key).name
            shutil.copy(field / key, target)
            os.utime(target, (START + 3600 * hour, START + 3600 * hour))
        together, together_unprocessed = counted(together_dir, settings, classifier)
    for title, results, unprocessed in (
        ("each photo alone", alone, alone_unprocessed),
        ("one folder", together, together_unprocessed),
    ):
        print(f"\n## Photos through the pipeline: {title}\n")
        rows = list(photo_rows(photos, results, unprocessed))
        print(format_table(PHOTO_COLUMNS, photo_figures(rows, lights)))


# -- 2. clips ---------------------------------------------------------------------------


def run_clips(field: Path, truth: dict, settings: Settings, classifier: Classifier) -> None:
    print("\n## Clips\n")
    table = []
    for key, entry in truth.items():
        if not key.startswith("video/"):
            continue
        clip_settings = settings.model_copy(
            update={"source": settings.source.model_copy(update={"uri": str(field / key)})}
        )
        pipeline = Pipeline(clip_settings, classifier, privacy=PrivacyGuard(settings.privacy))
        with open_source(clip_settings.source) as source:
            events = list(pipeline.run(source))
        labels = Counter()
        for event in events:
            for observation in event.observations:
                labels[observation.label] += observation.max_n
        right = bool(labels) and labels.most_common(1)[0][0] in ok_labels(entry)
        table.append([Path(key).name, entry["label"], len(events), dict(labels), right])
    print(format_table(["clip", "truth", "events", "counted", "label right"], table))


# -- 4. real bursts (development) ------------------------------------------------------


def frame_order(image: dict[str, Any]) -> tuple[int, str]:
    """A sequence's frames in the order they were taken: COCO Camera Traps' ``frame_num``
    when given, else the file's own name (``..._IMG_0016.jpg``), not its path: a dataset
    filed by category puts a sequence's empty frames under ``images/empty/``, ahead of the
    animal frames taken before them."""
    return image.get("frame_num", -1), PurePosixPath(image["file_name"]).name


class Burst(NamedTuple):
    """One real burst of field-train fed alone to the pipeline."""

    name: str  # the sequence id; ``SEQ/empty@N`` for its empty frames from frame N on
    images: list[dict[str, Any]]  # COCO image entries in the order they were taken
    most: int  # the most boxes on one frame: the count MaxN should reach


def bursts_of(coco: dict[str, Any], min_frames: int = 3) -> list[Burst]:
    """field-train's sequences of at least ``min_frames`` frames as bursts, and beside them
    every run of at least ``min_frames`` consecutive empty frames inside a sequence (before
    the animal came or after it left) as an empty trigger of its own: real frames of the
    same camera, flash and wind, where a trap must count nothing. The whole sequences hold
    only two empty ones."""
    boxes: dict[Any, int] = Counter(
        a["image_id"] for a in coco["annotations"] if a.get("bbox") is not None
    )
    empty_ids = {c["id"] for c in coco["categories"] if c["name"] == EMPTY}
    labelled: dict[Any, set[Any]] = defaultdict(set)
    for a in coco["annotations"]:
        labelled[a["image_id"]].add(a["category_id"])
    sequences: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for image in coco["images"]:
        if image.get("seq_id"):
            sequences[image["seq_id"]].append(image)
    bursts = []
    for seq_id, images in sorted(sequences.items()):
        if len(images) < min_frames:
            continue
        images.sort(key=frame_order)
        bursts.append(Burst(seq_id, images, max(boxes.get(im["id"], 0) for im in images)))
        if not bursts[-1].most:
            continue  # an empty sequence is already an empty trigger
        run: list[dict[str, Any]] = []
        for position, image in enumerate([*images, None]):
            if (
                image is not None
                and not boxes.get(image["id"])
                and labelled[image["id"]] <= empty_ids
            ):
                run.append(image)
                continue
            if len(run) >= min_frames:
                bursts.append(Burst(f"{seq_id}/empty@{position - len(run)}", run, 0))
            run = []
    return bursts


def write_bursts(folder: Path, field_train: Path, bursts: list[Burst]) -> dict[str, str]:
    """``bursts``' frames copied into ``folder`` as one camera's card, with file times
    (the frames carry no EXIF) one second apart within a burst and an hour between bursts;
    returns {file name: its burst's name}."""
    owner: dict[str, str] = {}
    for k, burst in enumerate(bursts):
        for i, image in enumerate(burst.images):
            name = f"{k:03d}_{i:03d}.jpg"
            shutil.copy(field_train / image["file_name"], folder / name)
            os.utime(folder / name, (START + 3600 * k + i,) * 2)
            owner[name] = burst.name
    return owner


def run_bursts(field_train: Path, settings: Settings, classifier: Classifier) -> dict[str, int]:
    """Each burst alone; prints the figures and returns {burst: its count}."""
    coco = json.loads((field_train / "cct.json").read_text(encoding="utf-8"))
    rows = []
    for burst in bursts_of(coco):
        with tempfile.TemporaryDirectory() as tmp:
            write_bursts(Path(tmp), field_train, [burst])
            result, unprocessed = counted(Path(tmp), settings, classifier)
        labels: Counter = Counter()
        for per_photo in result.values():
            labels.update(per_photo)
        look = light(cv2.imread(str(field_train / burst.images[0]["file_name"])))
        rows.append(
            (
                burst.name,
                look,
                len(burst.images),
                burst.most,
                sum(labels.values()),
                len(unprocessed),
                labels,
            )
        )
    animal_seqs = sum(1 for r in rows if r[3])
    print(
        f"\n## Real bursts of {field_train} (development check): {animal_seqs} sequences with "
        f"an animal, {len(rows) - animal_seqs} empty triggers\n"
    )
    table = []
    for look in ("day", "ir", "all"):
        sel = [r for r in rows if look in ("all", r[1])]
        animal = [r for r in sel if r[3]]
        empty = [r for r in sel if not r[3]]
        found = [r for r in animal if r[4]]
        exact = sum(1 for r in found if r[4] == r[3])
        over = sum(1 for r in found if r[4] > r[3])
        under = sum(1 for r in found if r[4] < r[3])
        table.append(
            [
                look,
                len(sel),
                f"{len(found)}/{len(animal)}",
                f"{sum(1 for r in empty if r[4])}/{len(empty)}",
                f"{exact}/{len(found)}",
                over,
                under,
                sum(1 for r in sel if r[5]),
            ]
        )
    columns = ["light", "bursts", "animal found", "empty counted", "count exact/found"]
    print(format_table([*columns, "over", "under", "with unprocessed frames"], table))
    misses = [r[0] for r in rows if r[3] and not r[4]]
    print(f"\nnot found: {', '.join(misses) or 'none'}")
    false = [f"{r[0]} ({dict(r[6])})" for r in rows if not r[3] and r[4]]
    print(f"empty counted: {', '.join(false) or 'none'}")
    for name, wrong in (("over", lambda r: r[4] > r[3]), ("under", lambda r: 0 < r[4] < r[3])):
        listed = [f"{r[0]} {r[1]} {r[3]}: {dict(r[6])}" for r in rows if r[3] and wrong(r)]
        print(f"counted {name} (sequence, light, truth: counted): {'; '.join(listed) or 'none'}")
    return {r[0]: r[4] for r in rows}


def burst_total(field_train: Path, bursts: list[Burst], settings, classifier) -> dict[str, int]:
    """{sequence: the count (MaxN summed over labels)} for ``bursts`` fed in this order as
    one folder of one camera (``write_bursts``)."""
    with tempfile.TemporaryDirectory() as tmp:
        owner = write_bursts(Path(tmp), field_train, bursts)
        result, _ = counted(Path(tmp), settings, classifier)
    totals = dict.fromkeys((b.name for b in bursts), 0)
    for name, labels in result.items():
        totals[owner[name]] += sum(labels.values())
    return totals


def run_camera_bursts(
    field_train: Path, settings: Settings, classifier: Classifier, alone: dict[str, int]
) -> None:
    """The sequences of each camera (``location``) with two or more, fed as a trap sees
    them: one folder, an hour between sequences, so that the background bank learns the
    camera's empty views from its other triggers; against each sequence alone (``alone``,
    from ``run_bursts``)."""
    coco = json.loads((field_train / "cct.json").read_text(encoding="utf-8"))
    location = {im["seq_id"]: im.get("location") for im in coco["images"] if im.get("seq_id")}
    cameras: dict[str, list[Burst]] = defaultdict(list)
    for burst in bursts_of(coco):
        if "/" not in burst.name and location.get(burst.name):
            cameras[location[burst.name]].append(burst)
    rows = []
    for camera, bursts in sorted(cameras.items()):
        if len(bursts) < 2:
            continue
        together = burst_total(field_train, bursts, settings, classifier)
        for burst in bursts:
            rows.append((camera, burst.name, burst.most, alone[burst.name], together[burst.name]))
    print(
        f"\n## Real bursts by camera: {len(rows)} sequences of "
        f"{len({r[0] for r in rows})} cameras with two or more, alone and as one camera's folder\n"
    )
    table = []
    for name, column in (("alone", 3), ("camera", 4)):
        animal = [r for r in rows if r[2]]
        found = [r for r in animal if r[column]]
        table.append(
            [
                name,
                f"{len(found)}/{len(animal)}",
                f"{sum(1 for r in rows if not r[2] and r[column])}/{len(rows) - len(animal)}",
                f"{sum(1 for r in found if r[column] == r[2])}/{len(found)}",
                sum(1 for r in found if r[column] > r[2]),
                sum(1 for r in found if r[column] < r[2]),
            ]
        )
    columns = ["fed", "animal found", "empty counted", "count exact/found", "over", "under"]
    print(format_table(columns, table))
    changed = [f"{r[1]} truth {r[2]}: {r[3]} -> {r[4]}" for r in rows if r[3] != r[4]]
    print(f"\nchanged (alone -> camera): {'; '.join(changed) or 'none'}")


# -- 3. crops ---------------------------------------------------------------------------


class BoxCrop(NamedTuple):
    """One hand-drawn box of ``field_boxes.json``, cropped as the trap crops it (square,
    10% margin: ``Classifier.classify_crops``) and classified."""

    look: str  # "day" or "ir": the photo's ``ir`` flag in field_boxes.json
    entry: dict[str, Any]  # the box's truth entry (the photo's when their labels agree)
    top: str  # the model's top label, whatever its confidence
    confidence: float
    partial: bool  # the animal cut by the frame edge, an overlay, or largely occluded


def box_crops(
    field: Path, truth: dict[str, Any], classifier: Classifier, boxes_file: Path = BOXES
) -> list[BoxCrop]:
    """Every box of ``boxes_file`` over the photos of ``field`` (keys relative to it),
    classified by ``classifier``. Also used by bench_field_finetune.py."""
    boxes = json.loads(boxes_file.read_text(encoding="utf-8"))["photos"]
    crops = []
    for key, item in boxes.items():
        entry = truth[key]
        image = cv2.imread(str(field / key))
        look = "ir" if item.get("ir") else "day"
        for box in item["boxes"]:
            label_entry = dict(entry) if box["label"] == entry["label"] else {"label": box["label"]}
            (prediction,) = classifier.classify_crops(image, [tuple(box["box"])])
            # A label the site cannot see (classifier.not_at_site) comes out unknown.
            top = prediction.top_label
            crops.append(
                BoxCrop(
                    look,
                    label_entry,
                    UNKNOWN if top in classifier.not_at_site else top,
                    prediction.confidence,
                    bool(box.get("partial")),
                )
            )
    return crops


def run_crops(field: Path, truth: dict, classifier: Classifier) -> None:
    if not BOXES.exists():
        print(f"\n(no {BOXES.relative_to(ROOT)}: crop-level figures skipped)")
        return
    crops = box_crops(field, truth, classifier)
    known = set(classifier.labels)
    print(f"\n## Crops ({len(crops)} hand-drawn boxes)\n")
    table = []
    for look in ("day", "ir", "all"):
        chosen = [c for c in crops if look == "all" or c[0] == look]
        # In-label: what the model has a label for (a model without ``person`` cannot be
        # right about a person); ``other``: species outside every model's labels.
        animals = [c for c in chosen if c[1]["label"] in known and c[1]["label"] != OTHER]
        others = [c for c in chosen if c[1]["label"] == OTHER]
        top_right = sum(1 for c in animals if c[2] in ok_labels(c[1]))
        row = [look, len(animals), f"{100 * top_right / max(1, len(animals)):.1f}%"]
        for threshold in (0.5,):
            right = sum(1 for c in animals if c[3] >= threshold and c[2] in ok_labels(c[1]))
            row.append(f"{100 * right / max(1, len(animals)):.1f}%")
        row.append(len(others))
        for threshold in THRESHOLDS[1:]:
            unknown = sum(1 for c in others if c[3] < threshold or c[2] in (UNKNOWN, OTHER))
            row.append(f"{100 * unknown / max(1, len(others)):.0f}%")
        table.append(row)
    print(
        format_table(
            [
                "crops",
                "in-label n",
                "top-1 right",
                "right at 0.5",
                "other n",
                *(f"other unknown @{t}" for t in THRESHOLDS[1:]),
            ],
            table,
        )
    )
    # Choosing classifier.confidence_threshold: at each threshold, what an animal crop
    # comes out as (in-label and other together): the right name, unknown (or other), or
    # a wrong name, the error a reader of the counts cannot see.
    animals = [c for c in crops if c.entry["label"] in known | {OTHER}]
    rows = []
    for threshold in THRESHOLDS:
        named = [c for c in animals if c.confidence >= threshold and c.top not in (UNKNOWN, OTHER)]
        right = sum(1 for c in named if c.top in ok_labels(c.entry))
        unsure = len(animals) - len(named)
        right_other = sum(
            1
            for c in animals
            if c.entry["label"] == OTHER and (c.confidence < threshold or c.top in (UNKNOWN, OTHER))
        )
        rows.append(
            [
                threshold,
                f"{100 * right / len(animals):.0f}%",
                f"{100 * unsure / len(animals):.0f}%",
                f"{100 * (len(named) - right) / len(animals):.0f}%",
                f"{100 * (right + right_other) / len(animals):.0f}%",
            ]
        )
    print(f"\nthresholds, {len(animals)} animal crops (in-label and other)\n")
    columns = ["threshold", "named right", "unknown or other", "named wrong", "right in all"]
    print(format_table(columns, rows))
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for crop in crops:
        per_label[crop.entry["label"]][1] += 1
        per_label[crop.entry["label"]][0] += crop.top in ok_labels(crop.entry)
    print()
    print(
        format_table(
            ["label", "crops", "top-1 right"],
            [[label, n, f"{right}/{n}"] for label, (right, n) in sorted(per_label.items())],
        )
    )


def main() -> None:
    # The set's photos carry no EXIF time: the folder source's warning about it, once per
    # folder and photo here, says nothing the README does not.
    logging.getLogger("edge_agent").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--field", type=Path, default=FIELD)
    parser.add_argument("--skip-pipeline", action="store_true", help="crops only")
    parser.add_argument(
        "--bursts", action="store_true", help="also field-train's real bursts (development)"
    )
    parser.add_argument(
        "--cameras",
        action="store_true",
        help="with --bursts: also each camera's sequences as one folder (the background bank)",
    )
    parser.add_argument("--field-train", type=Path, default=FIELD_TRAIN)
    parser.add_argument(
        "--config", type=Path, default=None, help="a trapcount TOML config (default: defaults)"
    )
    args = parser.parse_args()
    if not (args.field / "truth.json").exists():
        print(f"skipped: no field set at {args.field} (../shared/data/field-dev)")
        return
    truth = json.loads((args.field / "truth.json").read_text(encoding="utf-8"))
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    model = args.model or default_model_dir()
    with load_classifier(model, settings.classifier) as classifier:
        print(
            f"# field set {args.field}: {len(truth)} items; model {model} "
            f"({classifier.manifest.version}, {len(classifier.labels)} labels, "
            f"threshold {settings.classifier.confidence_threshold})"
        )
        if not args.skip_pipeline:
            run_photos(args.field, truth, settings, classifier)
            run_clips(args.field, truth, settings, classifier)
        run_crops(args.field, truth, classifier)
        if args.bursts:
            if (args.field_train / "cct.json").exists():
                alone = run_bursts(args.field_train, settings, classifier)
                if args.cameras:
                    run_camera_bursts(args.field_train, settings, classifier, alone)
            else:
                print(f"\nreal bursts skipped: no {args.field_train / 'cct.json'}")


if __name__ == "__main__":
    main()
