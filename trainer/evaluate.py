"""Float and int8 accuracy, per-class recall and the confusion-matrix PNG.

The int8 model is measured through ``edge_agent.vision.classifier.Classifier``, the class the Pi
runs, so the accuracy written into the manifest is what the trap gets (same quantization of
the input, same interpreter, same output dequantization).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.manifest import Manifest, read_manifest
from edge_agent.vision.classifier import Classifier
from trainer.calibrate import logit_model
from trainer.cct import with_recorded_options
from trainer.data import DataError, Dataset, load_datasets, stratified_split, usable_cores
from trainer.looks import grey_images
from trainer.run_folder import KERAS_FILENAME, load_keras_model

log = logging.getLogger("trapcount.trainer")


@dataclass
class Scores:
    """Predictions of one model on one labelled set."""

    labels: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def accuracy(self) -> float:
        if len(self.y_true) == 0:
            return float("nan")
        return float(np.mean(self.y_true == self.y_pred))

    @property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, len(self.labels))

    def per_class_recall(self) -> dict[str, float | None]:
        """Share of each class's images predicted as that class (None: no images)."""
        cm = self.confusion
        totals = cm.sum(axis=1)
        return {
            label: round(float(cm[i, i] / totals[i]), 4) if totals[i] else None
            for i, label in enumerate(self.labels)
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def predict_float(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Keras float model on raw uint8 pixels -> class indices."""
    probs = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return np.argmax(probs, axis=1)


def int8_probabilities(
    model_dir: Path, images: np.ndarray, num_threads: int | None = None
) -> np.ndarray:
    """The exported .tflite, through the edge agent's own classifier -> probabilities."""
    threads = num_threads or usable_cores()  # a container's share, not the host's count
    with Classifier(model_dir, num_threads=threads, max_batch=256) as classifier:
        return classifier.predict_proba(images)


def predict_int8(model_dir: Path, images: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """The exported .tflite, through the edge agent's own classifier -> class indices."""
    return np.argmax(int8_probabilities(model_dir, images, num_threads), axis=1)


def align_to_labels(data: Dataset, labels: list[str]) -> Dataset:
    """Re-index ``data`` to a model's label order; images of classes it lacks are dropped."""
    unknown = sorted(set(data.classes) - set(labels))
    if unknown:
        log.warning("the model has no label for %s; those images are left out", ", ".join(unknown))
    mapping = np.array([labels.index(c) if c in labels else -1 for c in data.classes], np.int64)
    new_labels = mapping[data.labels] if len(data) else np.zeros(0, np.int64)
    keep = new_labels >= 0
    if not keep.any():
        raise DataError(
            f"none of the data's classes ({', '.join(data.classes)}) is a label of the model "
            f"({', '.join(labels)})"
        )
    return Dataset(data.images[keep], new_labels[keep].astype(np.int32), list(labels), data.sources)


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Row-normalized confusion matrix with counts, as a PNG (matplotlib, Agg backend)."""
    # matplotlib (a second to import) only when a picture is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm, dtype=float), where=totals > 0)
    side = max(4.0, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_history(history: list[dict[str, float]], path: Path, title: str) -> Path | None:
    """The accuracy curve of a run (training and validation accuracy per epoch, and the
    learning rate), as a PNG; None when the history holds no epochs."""
    rows = [r for r in history if "epoch" in r]
    if not rows:
        return None
    import matplotlib  # only when a picture is drawn, as in plot_confusion

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for key, name in (("accuracy", "training (augmented)"), ("val_accuracy", "validation")):
        values = [100 * r[key] if key in r else np.nan for r in rows]
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if any("lr" in r for r in rows):
        lr_axis = ax.twinx()
        lr_axis.plot(epochs, [r.get("lr", np.nan) for r in rows], color="grey", ls=":")
        lr_axis.set_ylabel("learning rate at epoch end (dotted)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluation_set(
    model_dir: Path,
    data_specs: list[str],
    *,
    split: str = "val",
    use_cache: bool = True,
    val_split: float | None = None,
) -> tuple[Manifest, Dataset, str]:
    """The labelled images a model folder is measured on, in its label order, and a phrase
    saying which: ``val`` recomputes the validation split the manifest records (same data,
    same seed), ``all`` uses every image (a separate test set).

    ``val_split`` measures on a smaller fraction of the same seeded split instead, so that
    models trained with different fractions are compared on the same images: each class's
    validation images are the front of one seeded shuffle, so a smaller fraction's images
    are among the ones every model with a larger fraction held out. A fraction larger than
    the model's own would include images it trained on and is refused."""
    if not model_dir.exists():
        raise DataError(f"model folder not found: {model_dir}")
    manifest = read_manifest(model_dir)
    training = manifest.training or {}
    # A COCO Camera Traps .json given bare is read with the options the model recorded.
    data_specs = with_recorded_options(data_specs, training.get("datasets"))
    data = load_datasets(data_specs, manifest.input_size, use_cache=use_cache, min_classes=1)
    if split == "val":
        fraction = float(training.get("val_split", 0.2))
        seed = int(training.get("split_seed", 0))
        if val_split is not None:
            if not 0.0 < val_split <= fraction:
                raise DataError(
                    f"validation split {val_split:g} is not in (0, {fraction:g}]: {model_dir} "
                    f"held out {fraction:g} of the data and trained on the rest"
                )
            if data.groups is not None and val_split < fraction:
                log.warning(
                    "split by group (COCO Camera Traps): the groups held out at %g are not "
                    "all among those held out at %g; some of these images were trained on",
                    val_split,
                    fraction,
                )
            fraction = val_split
        data = stratified_split(data, fraction, seed).val
        where = f"validation split ({fraction:g}, seed {seed})"
    elif split == "all":
        where = "all images"
    else:
        raise ValueError(f"unknown split {split!r} (val, all)")
    return manifest, align_to_labels(data, manifest.labels), where


def evaluate_model_dir(
    model_dir: Path | str,
    data_specs: list[str],
    *,
    split: str = "val",
    use_cache: bool = True,
    num_threads: int | None = None,
    val_split: float | None = None,
    grey: bool = False,
) -> dict[str, Any]:
    """``trapcount-train evaluate``: int8 (and float, when model.keras is beside it) accuracy
    of a model folder on ``split`` of ``data_specs``: ``val`` recomputes the validation split
    the manifest records (same data, same seed), ``all`` uses every image (a separate test
    set); ``val_split`` a smaller fraction of the same split (see :func:`evaluation_set`).
    ``grey`` also measures on the same images turned grey (:func:`grey_figures`)."""
    model_dir = Path(model_dir).expanduser()
    manifest, data, where = evaluation_set(
        model_dir, data_specs, split=split, use_cache=use_cache, val_split=val_split
    )
    log.info("evaluating %s on %s: %d images", model_dir, where, len(data))
    int8 = Scores(manifest.labels, data.labels, predict_int8(model_dir, data.images, num_threads))
    result: dict[str, Any] = {
        "model": str(model_dir),
        "sha256": manifest.sha256,
        "split": where,
        "n": len(data),
        "labels": manifest.labels,
        "int8_accuracy": round(int8.accuracy, 4),
        "per_class_recall_int8": int8.per_class_recall(),
        "confusion_int8": int8.confusion.tolist(),
    }
    keras_path = model_dir / KERAS_FILENAME
    model = flt = None
    companion = manifest.grey_companion
    if companion is not None:
        # model.keras is the colour network alone: its float figures would not be this
        # model's, which sends grey crops to the companion. The int8 ones are.
        result["grey_companion"] = companion.sha256
        log.info("a model with a grey companion: int8 figures only (model.keras is colour)")
    elif keras_path.is_file():
        model = load_keras_model(keras_path)
        if manifest.tta != "none":  # measure the float model the way the .tflite runs it
            # Keras (seconds) only for a float model: compare and int8-only folders skip it.
            from trainer.tta import classifier_head

            model = classifier_head(logit_model(model), manifest.tta)
        flt = Scores(manifest.labels, data.labels, predict_float(model, data.images))
        result["float_accuracy"] = round(flt.accuracy, 4)
        result["per_class_recall_float"] = flt.per_class_recall()
        result["quant_drop_points"] = round(100 * (flt.accuracy - int8.accuracy), 2)
    if grey:
        log.info("and on the same %d images turned grey", len(data))
        result["grey"] = grey_figures(
            data,
            int8,
            lambda images: predict_int8(model_dir, images, num_threads),
            flt,
            None if model is None else lambda images: predict_float(model, images),
        )
    result["_scores"] = int8
    return result


GREY_LOOK = "ITU-R BT.601 luma, rounded, in all three channels"


def grey_figures(
    data: Dataset,
    int8_colour: Scores,
    predict_int8_grey: Callable[[np.ndarray], np.ndarray],
    float_colour: Scores | None = None,
    predict_float_grey: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Accuracy on ``data``'s images turned grey (trainer.looks.grey_images: the same
    conversion for every image, no noise), as an infrared trap frame is, and the gap to the
    colour accuracy in points; int8, and float when its colour scores and predictor are
    given. The predictors map uint8 images to class indices."""
    images = grey_images(data.images)
    int8 = Scores(data.classes, data.labels, predict_int8_grey(images))
    figures: dict[str, Any] = {"look": GREY_LOOK, "n": len(data)}
    if float_colour is not None and predict_float_grey is not None:
        flt = Scores(data.classes, data.labels, predict_float_grey(images))
        figures["float_accuracy"] = round(flt.accuracy, 4)
        figures["float_gap_points"] = round(100 * (float_colour.accuracy - flt.accuracy), 2)
    figures["int8_accuracy"] = round(int8.accuracy, 4)
    figures["int8_gap_points"] = round(100 * (int8_colour.accuracy - int8.accuracy), 2)
    figures["per_class_recall_int8"] = int8.per_class_recall()
    return figures
