"""Real camera-trap crops: the CIFAR-only model against fine-tuned ones (issue 26).

Compares model folders (``model.tflite`` + ``model.json``; ``models/default``, the shipped
CIFAR-only model, plus every ``--model DIR``, each named by its folder's name) through the
edge agent's own int8 classifier (``edge_agent.service.model.load_classifier``, the
threshold ``classifier.confidence_threshold`` of the default settings), day (colour) and
IR (grey) crops apart:

1. **field-dev**: the hand-drawn boxes of ``benchmarks/field_boxes.json`` over the photos
   of ``../shared/data/field-dev`` (other sources, other cameras than any training data),
   cropped and classified as bench_field.py crops them (``bench_field.box_crops``: the
   trap's square crop with its margin); day or IR is the photo's ``ir`` flag there.
2. **field-train, leave locations out**: the crops of ``../shared/data/field-train/cct.json``
   from the locations held out of a fine-tuned run, cut by the trainer's own loader
   (``trainer.crops.read_coco``, with the options and label map the run recorded) at each
   model's input size. The held-out locations are recomputed the way the trainer splits
   (``trainer.data.load_datasets`` + ``stratified_split`` on the run's recorded data,
   ``val_split`` and ``split_seed``) and checked against the summary its manifest records
   (``training.split``). The first model given with COCO Camera Traps data in its training
   sets the split for every model, so all are measured on the same crops; without one,
   a seeded split of field-train alone (``trainer/maps/field-train.csv``, ``--empty-as
   empty``, ``--val-split`` 0.2, ``--split-seed`` 0 as the trainer's defaults) stands in,
   and the output says so. Day or IR is the edge's ``illumination_of`` on the crop's frame.

Figures per model and light (day, ir, all):

- **in-label**: crops whose truth is one of the model's labels: top-1 (the top label is
  right; for field-dev ``also_ok`` answers count, as in bench_field.py), right at the
  threshold (right and confident enough not to be ``unknown``), and for field-dev top-1 on
  the whole (not ``partial``) boxes;
- **per-class recall** (top-1) for every truth label of the set, ``n/a`` where the model
  has no such label;
- **out-of-label** (e.g. ``other`` and ``empty`` for a CIFAR-only model, ``person``
  for all): the share left ``unknown`` at the threshold, the share given a catch-all label
  (``other``/``empty``, for models that have one), the share given a named label that
  field-dev's ``also_ok`` allows (a coyote as ``dog``) and the share given a wrong named
  label (mislabelled: an agouti counted as a deer), with the named labels given most;
- the **CIFAR-10 accuracy** each manifest records (int8 and float, colour and grey): for
  "CIFAR within 1 point". A run trained on CIFAR plus COCO crops records it on the union
  of both validation sets; ``--cifar ARCHIVE`` measures every model int8 on the same
  CIFAR-10 validation images instead (the smallest recorded ``val_split``, so none of the
  models trained on them), colour and grey (``trainer.looks.grey_images``).

Nothing is measured, with one line saying so, where ``../shared/data`` is missing.

    .venv/bin/python benchmarks/bench_field_finetune.py
    .venv/bin/python benchmarks/bench_field_finetune.py --model runs/cifar-field
    .venv/bin/python benchmarks/bench_field_finetune.py --model runs/cifar-field \\
        --cifar ../shared/data/cifar10-train-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_field import BOXES, FIELD, box_crops, ok_labels  # noqa: E402

from edge_agent.config import Settings  # noqa: E402
from edge_agent.labels import UNKNOWN  # noqa: E402
from edge_agent.manifest import MODEL_FILENAME, Manifest, read_manifest  # noqa: E402
from edge_agent.service.model import default_model_dir, load_classifier  # noqa: E402
from edge_agent.text import format_table  # noqa: E402
from edge_agent.vision.classifier import Classifier  # noqa: E402
from edge_agent.vision.illumination import IR, illumination_of  # noqa: E402
from trainer.cct import CocoSource, DataError, is_coco_spec  # noqa: E402
from trainer.cct_plan import plan_crops  # noqa: E402
from trainer.crops import read_coco  # noqa: E402
from trainer.data import Dataset, Split, cache_dir, load_datasets, stratified_split  # noqa: E402
from trainer.looks import grey_images  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
FIELD_TRAIN = SHARED / "field-train" / "cct.json"
LABEL_MAP = ROOT / "trainer" / "maps" / "field-train.csv"
CATCH_ALL = frozenset({"other", "empty"})  # labels that name no species
LIGHTS = ("day", "ir", "all")


@dataclass(frozen=True)
class Scored:
    """One crop's truth and what a model said about it."""

    look: str  # "day" or "ir"
    truth: str
    ok: frozenset[str]  # the answers counted right
    top: str  # top label, whatever the confidence
    confidence: float
    partial: bool = False


@dataclass
class Model:
    name: str
    folder: Path
    manifest: Manifest

    @property
    def coco_specs(self) -> list[Any]:
        return [s for s in self.manifest.training.get("datasets", []) if is_coco_spec(s)]


@dataclass
class HeldOut:
    """The field-train crops every model is measured on: the validation groups of a split."""

    sources: list[CocoSource]
    groups: set[str]  # held out
    trained: set[str]  # on the training side
    how: str
    summary: dict[str, Any] = field(default_factory=dict)


# -- figures ----------------------------------------------------------------------------------


def said(crop: Scored, threshold: float) -> str:
    """The label the trap gives the crop: its top label, ``unknown`` below the threshold."""
    return crop.top if crop.confidence >= threshold else UNKNOWN


def outcome(crop: Scored, threshold: float) -> str:
    """What the trap's answer to an out-of-label crop is: ``unknown`` (below the threshold),
    ``catch-all`` (``other``/``empty``), ``also ok`` (a named label the truth allows, e.g. a
    coyote as ``dog``: field-dev's ``also_ok``) or ``wrong`` (any other named label)."""
    answer = said(crop, threshold)
    if answer == UNKNOWN:
        return "unknown"
    if answer in CATCH_ALL:
        return "catch-all"
    return "also ok" if answer in crop.ok else "wrong"


OUTCOMES = ("unknown", "catch-all", "also ok", "wrong")
OUTCOME_COLUMNS = ["unknown", "other/empty", "named, also ok", "named (wrong)"]


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% ({part}/{whole})" if whole else "-"


def chosen(crops: Sequence[Scored], light: str) -> list[Scored]:
    return [c for c in crops if light == "all" or c.look == light]


def summary_rows(
    name: str, crops: Sequence[Scored], labels: set[str], threshold: float, partial: bool
) -> list[list[Any]]:
    rows = []
    for light in LIGHTS:
        these = chosen(crops, light)
        inside = [c for c in these if c.truth in labels]
        outside = [c for c in these if c.truth not in labels]
        answers = Counter(outcome(c, threshold) for c in outside)
        row = [
            name,
            light,
            len(these),
            len(inside),
            share(sum(c.top in c.ok for c in inside), len(inside)),
            share(sum(c.top in c.ok and c.confidence >= threshold for c in inside), len(inside)),
        ]
        if partial:
            whole = [c for c in inside if not c.partial]
            row.append(share(sum(c.top in c.ok for c in whole), len(whole)))
        row += [len(outside), *(share(answers[o], len(outside)) for o in OUTCOMES)]
        rows.append(row)
    return rows


def recall_rows(
    name: str, crops: Sequence[Scored], labels: set[str], classes: list[str]
) -> list[list[Any]]:
    rows = []
    for light in LIGHTS:
        these = chosen(crops, light)
        row: list[Any] = [name, light]
        for label in classes:
            of_label = [c for c in these if c.truth == label]
            if label not in labels:
                row.append(f"n/a ({len(of_label)})")
            elif of_label:
                right = sum(c.top in c.ok for c in of_label)
                row.append(f"{100 * right / len(of_label):.0f}% {right}/{len(of_label)}")
            else:
                row.append("-")
        rows.append(row)
    return rows


def outside_rows(
    name: str, crops: Sequence[Scored], labels: set[str], threshold: float
) -> list[list[Any]]:
    rows = []
    for truth in sorted({c.truth for c in crops if c.truth not in labels}):
        for light in LIGHTS:
            these = [c for c in chosen(crops, light) if c.truth == truth]
            if not these:
                continue
            answers = Counter(outcome(c, threshold) for c in these)
            named = Counter(
                said(c, threshold) for c in these if outcome(c, threshold) in OUTCOMES[2:]
            )
            rows.append(
                [
                    name,
                    truth,
                    light,
                    len(these),
                    *(share(answers[o], len(these)) for o in OUTCOMES),
                    ", ".join(f"{label} {n}" for label, n in named.most_common(3)) or "-",
                ]
            )
    return rows


def report(
    title: str,
    scored: dict[str, list[Scored]],
    models: list[Model],
    threshold: float,
    partial: bool = False,
) -> None:
    print(f"\n## {title}\n")
    columns = ["model", "light", "crops", "in-label", "top-1", f"right @{threshold:g}"]
    if partial:
        columns.append("top-1 whole boxes")
    columns += ["out-of-label", *OUTCOME_COLUMNS]
    rows = []
    for model in models:
        labels = set(model.manifest.labels)
        rows += summary_rows(model.name, scored[model.name], labels, threshold, partial)
    print(format_table(columns, rows))

    # Every model sees the same crops: the classes by how many crops they have.
    classes = [label for label, _ in Counter(c.truth for c in scored[models[0].name]).most_common()]
    print("\nper-class recall, top-1 (n/a: not one of the model's labels; crops in brackets)\n")
    rows = []
    for model in models:
        rows += recall_rows(model.name, scored[model.name], set(model.manifest.labels), classes)
    print(format_table(["model", "light", *classes], rows))

    rows = []
    for model in models:
        rows += outside_rows(model.name, scored[model.name], set(model.manifest.labels), threshold)
    if rows:
        print(f"\nout-of-label crops at threshold {threshold:g}: what the trap would say\n")
        print(
            format_table(
                ["model", "truth", "light", "crops", *OUTCOME_COLUMNS, "named most"],
                rows,
            )
        )


# -- the models and their CIFAR-10 figures -----------------------------------------------------


def percent(value: object) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, int | float) else "-"


def model_table(models: list[Model]) -> None:
    print("\n## Models: the CIFAR-10 accuracy each manifest records (its own validation split)\n")
    rows = []
    for model in models:
        m = model.manifest
        accuracy, training = m.accuracy, m.training
        n_val = accuracy.get("n_val", training.get("n_val"))
        split = f"{accuracy.get('val_split', '?')} seed {accuracy.get('split_seed', '?')}"
        coco = ", ".join(Path(CocoSource.from_spec(s).path).name for s in model.coco_specs)
        rows.append(
            [
                model.name,
                str(model.folder),
                m.version,
                len(m.labels),
                f"{m.input_size[0]}x{m.input_size[1]}",
                m.tta,
                percent(accuracy.get("int8")),
                percent(accuracy.get("int8_grey")),
                percent(accuracy.get("float")),
                percent(accuracy.get("float_grey")),
                n_val,
                split,
                f"+ {coco} crops" if coco else "-",
            ]
        )
    columns = ["model", "folder", "version", "labels", "input", "tta", "int8", "int8 grey"]
    columns += ["float", "float grey", "n_val", "val split", "validation includes"]
    print(format_table(columns, rows))
    if any(model.coco_specs for model in models):
        print(
            "\n(a model whose validation includes COCO crops records its accuracy on the "
            "union, not on CIFAR-10 alone: --cifar ARCHIVE measures CIFAR-10 alone)"
        )


def cifar_table(
    models: list[Model], classifiers: dict[str, Classifier], archive: Path, seed: int
) -> None:
    """Every model, int8 through the edge classifier, on the same CIFAR-10 validation images:
    the smallest validation fraction any model recorded, so that none trained on them."""
    fractions = [float(m.manifest.training.get("val_split", 0.2)) for m in models]
    fraction = min(fractions)
    seeds = {int(m.manifest.training.get("split_seed", 0)) for m in models}
    if seeds != {seed}:
        print(f"\n(note: the models record split seeds {sorted(seeds)}; measuring seed {seed})")
    rows = []
    by_size: dict[tuple[int, int], Dataset] = {}
    for model in models:
        size = model.manifest.input_size
        if size not in by_size:
            data = load_datasets([str(archive)], size)
            by_size[size] = stratified_split(data, fraction, seed).val
        val = align(by_size[size], model.manifest.labels)
        classifier = classifiers[model.name]
        colour = np.argmax(classifier.predict_proba(val.images), axis=1)
        grey = np.argmax(classifier.predict_proba(grey_images(val.images)), axis=1)
        rows.append(
            [
                model.name,
                len(val),
                percent(float(np.mean(colour == val.labels))),
                percent(float(np.mean(grey == val.labels))),
            ]
        )
    print(
        f"\n## CIFAR-10 measured here: {archive.name}, validation split {fraction:g} "
        f"(seed {seed}), int8\n"
    )
    print(format_table(["model", "images", "int8", "int8 grey"], rows))


def align(data: Dataset, labels: list[str]) -> Dataset:
    """``data`` with its class indices renumbered to ``labels`` (CIFAR's classes are in
    every model's labels)."""
    index = np.array([labels.index(name) for name in data.classes])
    return replace(data, labels=index[data.labels].astype(np.int32), classes=list(labels))


# -- 1. field-dev ------------------------------------------------------------------------------


def field_dev(
    models: list[Model], classifiers: dict[str, Classifier], field_dir: Path, threshold: float
) -> None:
    truth_file = field_dir / "truth.json"
    if not truth_file.exists() or not BOXES.exists():
        print(f"\n(field-dev skipped: no {truth_file} or {BOXES.relative_to(ROOT)})")
        return
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    scored = {}
    for model in models:
        scored[model.name] = [
            Scored(
                c.look,
                c.entry["label"],
                frozenset(ok_labels(c.entry)),
                c.top,
                c.confidence,
                c.partial,
            )
            for c in box_crops(field_dir, truth, classifiers[model.name])
        ]
    crops = next(iter(scored.values()))
    lights = Counter(c.look for c in crops)
    report(
        f"field-dev: {len(crops)} hand-drawn boxes ({lights['day']} day, {lights['ir']} IR; "
        f"{sum(c.partial for c in crops)} partial) over {field_dir}",
        scored,
        models,
        threshold,
        partial=True,
    )


# -- 2. field-train, leave locations out ------------------------------------------------------


def recorded_split(model: Model) -> HeldOut:
    """The validation groups of ``model``'s run, recomputed from the data it recorded."""
    training = model.manifest.training
    specs = training["datasets"]
    fraction = float(training.get("val_split", 0.2))
    seed = int(training.get("split_seed", 0))
    data = load_datasets(specs, model.manifest.input_size, min_classes=1)
    # The split needs the labels and groups only; no copies of the images.
    data = replace(data, images=np.empty((len(data), 0, 0, 3), np.uint8))
    split = stratified_split(data, fraction, seed)
    groups, trained = group_sets(split)
    recorded = training.get("split")
    if recorded is not None and json.loads(json.dumps(split.groups)) != recorded:
        print(
            f"WARNING: the split recomputed for {model.name} ({split.groups}) differs from the "
            f"one its manifest records ({recorded}): has the data changed?"
        )
    sources = [CocoSource.from_spec(s) for s in specs if is_coco_spec(s)]
    how = f"held out by {model.name} (val_split {fraction:g}, seed {seed}, as recorded)"
    return HeldOut(sources, groups, trained, how, split.groups)


def group_sets(split: Split) -> tuple[set[str], set[str]]:
    """The COCO groups on the validation and the training side of a split."""
    return (
        set(np.unique(split.val.groups).tolist()) - {""},
        set(np.unique(split.train.groups).tolist()) - {""},
    )


def default_split(fraction: float, seed: int) -> HeldOut:
    """field-train alone, split the way the trainer splits it (no fine-tuned model given)."""
    spec = {"coco": str(FIELD_TRAIN), "label_map": str(LABEL_MAP), "empty_as": "empty"}
    data = load_datasets([spec], (32, 32), min_classes=1)
    split = stratified_split(data, fraction, seed)
    groups, trained = group_sets(split)
    how = (
        f"no fine-tuned model with COCO data given: field-train alone split by the trainer "
        f"(--label-map {LABEL_MAP.relative_to(ROOT)} --empty-as empty, val_split {fraction:g}, "
        f"seed {seed})"
    )
    return HeldOut([CocoSource.from_spec(spec)], groups, trained, how, split.groups)


def held_crops(held: HeldOut, size: tuple[int, int]) -> tuple[np.ndarray, list[str], list[str]]:
    """The held-out crops at ``size`` (the trainer's loader and cache), their labels, and
    day/IR of each crop's frame."""
    images, names, looks = [], [], []
    for source in held.sources:
        crops = read_coco(source, size, cache_dir() / "datasets")
        keep = np.flatnonzero(np.isin(crops.groups(source.split_by), list(held.groups)))
        # By the frame's id within this source ("image:<json>#<id>"): the .json's path in a
        # key is written as the source was given (relative in a shipped manifest), so the
        # cached crops' keys and a new plan's need not spell it alike.
        paths = {frame_id(p.key): p.path for p in plan_crops(source).images}
        images.append(crops.images[keep])
        names += [crops.names[i] for i in keep]
        looks += [frame_look(paths[frame_id(str(crops.frames[i]))]) for i in keep]
    return np.concatenate(images), names, looks


def frame_id(key: str) -> str:
    return key.rsplit("#", 1)[-1]


def sides(summary: dict[str, Any]) -> str:
    """The groups on each side of a split (trainer.cct_plan.group_split's summary)."""
    words = {"location": "locations", "seq": "sequences", "image": "single frames"}
    parts = [
        f"{summary[k]['val']} {word} held out, {summary[k]['train']} trained on"
        for k, word in words.items()
        if k in summary
    ]
    if "images" in summary:
        images = summary["images"]
        parts.append(f"{images['val']} crops held out, {images['train']} trained on")
    return "; ".join(parts)


def shown(groups: Iterable[str]) -> list[str]:
    """Split groups as people name them: a location, ``seq X``, ``frame N``."""
    names = []
    for group in sorted(groups):
        kind, _, name = group.partition(":")
        names.append(
            name
            if kind == "location"
            else f"frame {name.rsplit('#', 1)[-1]}"
            if kind == "image"
            else f"{kind} {name}"
        )
    return names


_LOOKS: dict[Path, str] = {}


def frame_look(path: Path) -> str:
    if path not in _LOOKS:
        frame = cv2.imread(str(path))
        _LOOKS[path] = "ir" if frame is not None and illumination_of(frame) == IR else "day"
    return _LOOKS[path]


def field_train(
    models: list[Model], classifiers: dict[str, Classifier], args: argparse.Namespace
) -> None:
    tuned = [m for m in models if m.coco_specs]
    if not tuned and not FIELD_TRAIN.exists():
        print(f"\n(field-train skipped: no {FIELD_TRAIN})")
        return
    try:
        held = recorded_split(tuned[0]) if tuned else default_split(args.val_split, args.seed)
        for other in tuned[1:]:
            trained_on = held.groups & recorded_split(other).trained
            if trained_on:
                print(
                    f"WARNING: {other.name} trained on {len(trained_on)} of the "
                    f"{len(held.groups)} held-out groups ({', '.join(shown(trained_on)[:5])}"
                    f"{'...' if len(trained_on) > 5 else ''}): its field-train figures "
                    "include crops it trained on"
                )
        scored = {}
        for model in models:
            images, names, looks = held_crops(held, model.manifest.input_size)
            predictions = classifiers[model.name].classify(images)
            scored[model.name] = [
                Scored(look, name, frozenset({name}), p.top_label, p.confidence)
                for look, name, p in zip(looks, names, predictions, strict=True)
            ]
    except DataError as exc:
        print(f"\n(field-train skipped: {exc})")
        return
    crops = next(iter(scored.values()))
    lights = Counter(c.look for c in crops)
    print(f"\nfield-train split: {held.how}; {sides(held.summary)}")
    files = ", ".join(f"{Path(s.path).parent.name}/{s.name}" for s in held.sources)
    report(
        f"{files}, leave locations out: {len(crops)} crops ({lights['day']} day, "
        f"{lights['ir']} IR) from {len(held.groups)} held-out groups",
        scored,
        models,
        args.threshold,
    )


# -- main -----------------------------------------------------------------------------------


def model_folders(given: Iterable[Path]) -> list[tuple[str, Path]]:
    """(name, folder): the shipped model first, then each ``--model`` once, by folder name
    (the path where two share a name)."""
    folders: list[Path] = []
    for folder in [default_model_dir(), *given]:
        if folder.resolve() not in [f.resolve() for f in folders]:
            folders.append(folder)
    names = [f.resolve().name for f in folders]
    return [
        (name if names.count(name) == 1 else str(folder), folder)
        for name, folder in zip(names, folders, strict=True)
    ]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        help="a model folder to compare with the shipped one (repeatable)",
    )
    parser.add_argument("--field", type=Path, default=FIELD, help="the field-dev folder")
    parser.add_argument(
        "--cifar",
        type=Path,
        default=None,
        help="also measure every model on the same CIFAR-10 validation images from this "
        "archive (e.g. ../shared/data/cifar10-train-jpeg.tar.gz)",
    )
    parser.add_argument(
        "--val-split",
        type=float,
        default=0.2,
        help="field-train split when no model recorded one (the trainer's default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="that split's seed")
    args = parser.parse_args()
    if not SHARED.exists():
        print(f"skipped: no shared data at {SHARED} (../shared/data): nothing measured")
        return
    settings = Settings()
    args.threshold = settings.classifier.confidence_threshold
    models = []
    for name, folder in model_folders(args.model):
        if not (folder / MODEL_FILENAME).is_file():
            parser.error(f"{folder}: no {MODEL_FILENAME} (not an exported model folder)")
        models.append(Model(name, folder, read_manifest(folder)))
    classifiers = {m.name: load_classifier(m.folder, settings.classifier) for m in models}
    try:
        print(
            f"# {len(models)} models; int8 through the edge classifier, threshold "
            f"{args.threshold:g} (classifier.confidence_threshold)"
        )
        model_table(models)
        if args.cifar is not None:
            cifar_table(models, classifiers, args.cifar, args.seed)
        field_dev(models, classifiers, args.field, args.threshold)
        field_train(models, classifiers, args)
    finally:
        for classifier in classifiers.values():
            classifier.close()


if __name__ == "__main__":
    main()
