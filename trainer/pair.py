"""``trapcount-train pair``: one model folder from a colour network and a grey companion.

A network trained on infrared-like crops alone (``--ir 1.0``, taught by the colour model
with ``--teacher``: it sees the colour crop, the student the grey one) names grey crops
better than any one network that must also use colour (models/default/README.md). The pair
is the colour run's folder with the grey run's ``.tflite`` beside it as ``model-grey.tflite``
and a ``grey`` section in ``model.json`` (file, sha256, the spread rule, the grey network's
own accuracy and training): the trap runs one of the two on each crop
(``edge_agent.vision.classifier``), so a crop costs what it did.

Standard library and the manifest only: pairing needs no TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from edge_agent.manifest import (
    GREY_FILENAME,
    GREY_MAX_SPREAD,
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    Manifest,
    ModelContractError,
    read_manifest,
    verify_hash,
    write_manifest,
)

log = logging.getLogger("trapcount.trainer")

# What the grey section keeps of the grey run's training record: enough to say what it
# was taught on and how, not its whole history.
_TRAINING_KEYS = (
    "datasets",
    "n_train",
    "n_val",
    "val_split",
    "split_seed",
    "epochs",
    "lr",
    "translate",
    "cutout",
    "ir",
    "grey",
    "teacher",
    "teacher_weight",
    "teacher_tta",
    "init_from",
    "teacher_sha256",
    "train_seconds",
    "code",
)


def _checked(model_dir: Path, what: str) -> Manifest:
    if not Path(model_dir).is_dir():
        raise ModelContractError(f"{what} {model_dir} is not a model folder")
    manifest = read_manifest(model_dir)
    verify_hash(manifest, Path(model_dir) / MODEL_FILENAME)
    return manifest


def pair_models(
    colour_dir: Path, grey_dir: Path, out: Path, *, max_spread: float = GREY_MAX_SPREAD
) -> Manifest:
    """Write into ``out`` the colour model of ``colour_dir`` with the network of ``grey_dir``
    as its grey companion; return the new manifest. ``out`` may be ``colour_dir`` (the
    companion is added in place). Refused, one line, unless both are intact models of the
    same labels, input and output."""
    colour_dir, grey_dir, out = Path(colour_dir), Path(grey_dir), Path(out)
    colour = _checked(colour_dir, "colour model")
    grey = _checked(grey_dir, "grey model")
    if grey.grey:
        raise ModelContractError(f"grey model {grey_dir} has a grey companion of its own")
    if grey.labels != colour.labels:
        raise ModelContractError(
            f"the grey model's labels ({', '.join(grey.labels)}) are not the colour "
            f"model's ({', '.join(colour.labels)}), in the same order"
        )
    for name in ("input", "output"):
        mine, theirs = getattr(colour, name), getattr(grey, name)
        if (mine.shape[1:], mine.dtype) != (theirs.shape[1:], theirs.dtype):
            raise ModelContractError(
                f"the grey model's {name} ({theirs.shape[1:]} {theirs.dtype}) is not the "
                f"colour model's ({mine.shape[1:]} {mine.dtype})"
            )
    if not 0 < max_spread <= 255:
        raise ModelContractError("max spread must be in (0, 255]")
    if colour.grey:
        log.info("%s had a grey companion; it is replaced", colour_dir)
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != colour_dir.resolve():
        shutil.copy2(colour_dir / MODEL_FILENAME, out / MODEL_FILENAME)
    shutil.copy2(grey_dir / MODEL_FILENAME, out / GREY_FILENAME)
    training: dict[str, Any] = {k: grey.training[k] for k in _TRAINING_KEYS if k in grey.training}
    # Until the pair is measured (record_pair_accuracy), its figures are the colour
    # network's alone, and say so.
    colour.accuracy = {**colour.accuracy, "measured": "colour network alone"}
    colour.grey = {
        "file": GREY_FILENAME,
        "sha256": grey.sha256,
        "max_spread": max_spread,
        "arch": grey.arch,
        "tta": grey.tta,
        "accuracy": dict(grey.accuracy),
        "confidence": dict(grey.confidence),
        "training": training,
    }
    write_manifest(colour, out)
    log.info(
        "%s: %s with grey companion %s (crops of spread under %g)",
        out / MANIFEST_FILENAME,
        colour.sha256[:12],
        grey.sha256[:12],
        max_spread,
    )
    return colour


def record_pair_accuracy(model_dir: Path, evaluation: dict[str, Any]) -> Manifest:
    """Write the pair's own figures (``trainer.evaluate.evaluate_model_dir`` run on the
    paired folder with ``grey=True``: int8, each crop through the network the trap would
    use) into its manifest's ``accuracy``, in place of the colour network's. The float
    figures are dropped: ``model.keras`` is the colour network alone."""
    manifest = read_manifest(model_dir)
    grey = evaluation["grey"]
    kept = {k: v for k, v in manifest.accuracy.items() if k in ("split", "val_split", "split_seed")}
    manifest.accuracy = {
        **kept,
        "int8": evaluation["int8_accuracy"],
        "int8_grey": grey["int8_accuracy"],
        "n_val": evaluation["n"],
        "measured": f"the pair, on {evaluation['split']}",
    }
    manifest.per_class_recall = dict(evaluation["per_class_recall_int8"])
    write_manifest(manifest, model_dir)
    return manifest
