"""Keras model -> SavedModel -> full-integer TFLite + manifest, refused if int8 loses accuracy.

The int8 model takes uint8 RGB pixels as they come from the camera crop (input scale 1,
zero point 0: the calibration set contains a 0 and a 255 pixel) and returns uint8
probabilities. ``Rescaling`` inside the model carries the normalization; BatchNorm folds
into the preceding convolution during conversion.

Files written into the export folder:
``model.keras`` (as trained), ``model.tflite`` (with the confidence temperature of
``trainer.calibrate`` when the validation split is large enough to fit one),
``model.json`` (the contract, ``edge_agent.manifest``),
``metrics.json`` (float/int8 accuracy, per-class recall, confusion matrices), and
``confusion.png`` (int8, validation split); after training also ``curve.png`` (accuracy by
epoch). When the quantization-drop guard fires,
``model.tflite`` becomes ``model.rejected.tflite`` and no ``model.json`` is left, so nothing
deployable remains, while ``metrics.json`` says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import __version__
from edge_agent.manifest import (
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    Manifest,
    TensorSpec,
    sha256_file,
    utc_now_iso,
    write_manifest,
)
from edge_agent.vision.classifier import load_interpreter_class
from trainer import calibrate
from trainer.cct import with_recorded_options
from trainer.data import DataError, Dataset, calibration_images, load_datasets, stratified_split
from trainer.evaluate import (
    Scores,
    align_to_labels,
    grey_figures,
    int8_probabilities,
    plot_confusion,
    plot_history,
    predict_float,
)
from trainer.looks import grey_images
from trainer.recipe import HParams
from trainer.run_folder import (
    CONFIG_FILENAME,
    CONFUSION_FILENAME,
    CURVE_FILENAME,
    KERAS_FILENAME,
    METRICS_FILENAME,
    REJECTED_FILENAME,
    TRAINING_DONE,
    labels_beside,
    load_keras_model,
    read_config,
    training_summary,
    write_json,
)

log = logging.getLogger("trapcount.trainer")

MIN_CALIBRATION_IMAGES = 200  # int8 quantization ranges (not confidence calibration)


class ExportError(RuntimeError):
    """The model could not be exported."""


class QuantizationDropError(ExportError):
    """int8 accuracy fell more than the allowed number of points below float."""

    def __init__(self, float_acc: float, int8_acc: float, limit: float, out: Path) -> None:
        self.float_accuracy, self.int8_accuracy, self.limit = float_acc, int8_acc, limit
        drop = 100 * (float_acc - int8_acc)
        super().__init__(
            f"int8 accuracy {100 * int8_acc:.2f}% is {drop:.2f} points below float "
            f"{100 * float_acc:.2f}% (allowed: {limit:g}); model not exported, see "
            f"{out / METRICS_FILENAME}"
        )


@dataclass
class ExportResult:
    out: Path
    manifest: Manifest
    metrics: dict[str, Any]


# -- conversion --------------------------------------------------------------------------------


def convert_int8(model, calibration: np.ndarray) -> bytes:
    """Full-integer TFLite (uint8 in, uint8 out, int8 ops), dynamic batch dimension.

    Goes through a SavedModel: ``from_concrete_functions`` cannot read Keras 3 variables.
    """
    import tensorflow as tf

    def representative():
        for image in calibration:
            yield [image[None].astype(np.float32)]

    with tempfile.TemporaryDirectory(prefix="trapcount-savedmodel-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises ConverterError and friends
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ExportError(f"TFLite conversion failed: {first}") from None


def tensor_specs(tflite_path: Path) -> tuple[TensorSpec, TensorSpec]:
    """Input and output TensorSpec (shape with -1 batch, dtype, scale, zero point)."""
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(tflite_path))
    specs = []
    for details in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        shape = [int(v) for v in details.get("shape_signature", details["shape"])]
        scale, zero_point = details["quantization"]
        specs.append(
            TensorSpec(
                shape=shape,
                dtype=np.dtype(details["dtype"]).name,
                scale=float(scale),
                zero_point=int(zero_point),
            )
        )
    return specs[0], specs[1]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- export ----------------------------------------------------------------------------------


def export_model(
    model,
    *,
    train: Dataset,
    val: Dataset,
    out: Path | str,
    arch: str,
    training: dict[str, Any],
    max_quant_drop: float = 1.0,
    calibration_count: int = 256,
    seed: int = 0,
    extra_metrics: dict[str, Any] | None = None,
    min_temperature_images: int = calibrate.MIN_CALIBRATION_IMAGES,
    tta: str = "none",
    grey_only: bool = False,
) -> ExportResult:
    """Write model.keras, model.tflite, model.json, metrics.json and confusion.png into
    ``out``; measure float and int8 accuracy on ``val`` (int8 through the edge classifier);
    raise :class:`QuantizationDropError` when int8 is more than ``max_quant_drop`` points
    worse than float. With at least ``min_temperature_images`` validation images, the
    .tflite divides its logits by a temperature fitted on them (``trainer.calibrate``).
    ``tta="flip"`` bakes the mirror-image average into it (``trainer.tta``); the float
    accuracy is then that of the same two-view average. Both are also measured on the
    validation images turned grey (``trainer.looks.grey_images``), the infrared gap.
    ``grey_only`` (a grey companion's run, every training crop grey: :func:`trained_grey_only`):
    the int8 ranges are calibrated, the temperature fitted and the quantization drop judged
    on the images turned grey, the look the network will be given. The
    graph converted is rewritten for int8 first (``trainer.int8_graph``); ``model.keras`` is
    saved as trained."""
    # These import Keras (seconds): when a model is exported, not when a command imports
    # this module for ExportError or plot_run_curve.
    from trainer.int8_graph import int8_ready
    from trainer.tta import classifier_head, views

    out = Path(out).expanduser()
    labels = list(train.classes)
    if len(val) == 0:
        raise DataError("cannot export: the validation split is empty")
    if int(model.output_shape[-1]) != len(labels):
        raise DataError(
            f"the model has {model.output_shape[-1]} outputs but the data has "
            f"{len(labels)} labels ({', '.join(labels)})"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None
    started = time.monotonic()
    for stale in (REJECTED_FILENAME, MANIFEST_FILENAME):
        with contextlib.suppress(FileNotFoundError):
            (out / stale).unlink()

    keras_path = out / KERAS_FILENAME
    tmp_keras = out / ".model.tmp.keras"
    model.save(tmp_keras)
    os.replace(tmp_keras, keras_path)

    count = max(calibration_count, MIN_CALIBRATION_IMAGES)
    calibration = calibration_images(train, count, seed)
    # The validation images the temperature is fitted on, in the look the trap will give.
    fit_val = val
    if grey_only:
        calibration = grey_images(calibration)
        fit_val = dataclasses.replace(val, images=grey_images(val.images))
    log.info(
        "converting to int8 TFLite, calibrated on %d training images of %d classes%s",
        len(calibration),
        len(labels),
        " turned grey (a grey companion)" if grey_only else "",
    )
    try:
        logits_model = calibrate.logit_model(model)
        tta_views = views(tta)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    # What the trap computes, in float: the crop (and its mirror, with --tta flip).
    float_model = model if tta == "none" else classifier_head(logits_model, tta)
    temperature, confidence, val_logits = fitted_temperature(
        float_model, fit_val, min_temperature_images
    )
    if grey_only:
        val_logits = None  # those were the grey images': colour is measured below
    ready_logits, graph_report = int8_ready(logits_model, calibration)
    deployed = classifier_head(ready_logits, tta, temperature)
    tflite_path = out / MODEL_FILENAME
    _write_atomic(tflite_path, convert_int8(deployed, calibration))
    input_spec, output_spec = tensor_specs(tflite_path)
    if input_spec.dtype != "uint8" or abs(input_spec.scale - 1.0) > 0.01 or input_spec.zero_point:
        log.warning(
            "int8 input is %s scale %g zero point %d, not raw pixels (scale 1, zero point 0)",
            input_spec.dtype,
            input_spec.scale,
            input_spec.zero_point,
        )
    manifest = Manifest(
        labels=labels,
        input=input_spec,
        output=output_spec,
        sha256=sha256_file(tflite_path),
        arch=arch,
        tta=tta,
        training=training,
        created=utc_now_iso(),
        trapcount_version=__version__,
    )
    write_manifest(manifest, out)  # the classifier refuses a model without a matching one

    log.info("measuring float and int8 accuracy on %d validation images", len(val))
    # The temperature fit already ran the float model on val: its logits rank the same.
    if val_logits is not None:
        flt = Scores(labels, val.labels, np.argmax(val_logits, axis=1))
    else:
        flt = Scores(labels, val.labels, predict_float(float_model, val.images))
    int8_probs = int8_probabilities(out, val.images)
    int8 = Scores(labels, val.labels, np.argmax(int8_probs, axis=1))
    confidence["ece_int8"] = round(calibrate.expected_calibration_error(int8_probs, val.labels), 4)
    confidence["mean_confidence_int8"] = round(float(int8_probs.max(axis=1).mean()), 4)
    manifest.confidence = confidence
    drop = 100 * (flt.accuracy - int8.accuracy)
    # The grey gap: the same validation images turned grey, as the trap sees at night.
    grey = grey_figures(
        val,
        int8,
        lambda images: np.argmax(int8_probabilities(out, images), axis=1),
        flt,
        lambda images: predict_float(float_model, images),
    )
    if grey_only:  # the drop that matters is on the look the network is given
        drop = 100 * (grey["float_accuracy"] - grey["int8_accuracy"])
    accepted = drop <= max_quant_drop
    manifest.accuracy = {
        "float": round(flt.accuracy, 4),
        "int8": round(int8.accuracy, 4),
        "float_grey": grey["float_accuracy"],
        "int8_grey": grey["int8_accuracy"],
        "split": "validation",
        "n_val": len(val),
        "val_split": training.get("val_split"),
        "split_seed": training.get("split_seed"),
    }
    manifest.per_class_recall = int8.per_class_recall()

    metrics = {
        "accepted": accepted,
        "float_accuracy": round(flt.accuracy, 4),
        "int8_accuracy": round(int8.accuracy, 4),
        "quant_drop_points": round(drop, 2),
        "max_quant_drop": max_quant_drop,
        "n_val": len(val),
        "n_calibration": len(calibration),
        "calibrated_on": "grey" if grey_only else "colour",
        "labels": labels,
        "per_class_recall": {"float": flt.per_class_recall(), "int8": int8.per_class_recall()},
        "confidence": confidence,
        "grey": grey,
        "int8_graph": dataclasses.asdict(graph_report),
        "tta": {"mode": tta, "views": tta_views},
        "confusion": {"float": flt.confusion.tolist(), "int8": int8.confusion.tolist()},
        "input": input_spec.__dict__,
        "output": output_spec.__dict__,
        "sha256": manifest.sha256,
        "tflite_bytes": tflite_path.stat().st_size,
        "keras_bytes": keras_path.stat().st_size,
        "export_seconds": round(time.monotonic() - started, 1),
        "created": manifest.created,
        **(extra_metrics or {}),
    }
    plot_confusion(
        int8.confusion,
        labels,
        out / CONFUSION_FILENAME,
        f"{arch} int8, validation n={len(val)}: {100 * int8.accuracy:.1f}% "
        f"(float {100 * flt.accuracy:.1f}%)",
    )
    write_json(out / METRICS_FILENAME, metrics)
    log.info(
        "accuracy on validation: float %.2f%%, int8 %.2f%% (drop %.2f points, allowed %g)",
        100 * flt.accuracy,
        100 * int8.accuracy,
        drop,
        max_quant_drop,
    )
    log.info(
        "turned grey (%s): float %.2f%%, int8 %.2f%% (%.2f points below colour)",
        grey["look"],
        100 * grey["float_accuracy"],
        100 * grey["int8_accuracy"],
        grey["int8_gap_points"],
    )
    if not accepted:
        os.replace(tflite_path, out / REJECTED_FILENAME)
        (out / MANIFEST_FILENAME).unlink()
        raise QuantizationDropError(flt.accuracy, int8.accuracy, max_quant_drop, out)
    write_manifest(manifest, out)
    return ExportResult(out, manifest, metrics)


def plot_run_curve(history: list[dict], network: str, int8_accuracy: float, path: Path):
    """A run's ``curve.png``, titled with its network, epochs and final int8 accuracy."""
    title = f"{network}, {len(history)} epochs: int8 {100 * int8_accuracy:.1f}% on validation"
    return plot_history(history, path, title)


def trained_grey_only(hparams: dict[str, Any]) -> bool:
    """Whether a run trained on every crop grey (``--ir 1``, or ``--grey 1``): a grey
    companion, whose export is calibrated on grey images."""
    return float(hparams.get("ir") or 0) >= 1.0 or float(hparams.get("grey") or 0) >= 1.0


def fitted_temperature(
    model, val: Dataset, min_images: int
) -> tuple[float | None, dict[str, Any], np.ndarray | None]:
    """The temperature to divide ``model``'s logits by (None when ``val`` is too small to
    fit one), what was done, for the manifest, and the float logits on ``val`` when they
    were computed."""
    if len(val) < min_images:
        log.info(
            "confidences left as trained: %d validation images, %d needed to calibrate them",
            len(val),
            min_images,
        )
        return (
            None,
            {"method": "none", "reason": f"fewer than {min_images} validation images"},
            None,
        )
    logits_model = calibrate.logit_model(model)
    logits = logits_model.predict(val.images.astype(np.float32), batch_size=256, verbose=0)
    temperature = calibrate.fit_temperature(logits, val.labels)
    before = calibrate.expected_calibration_error(calibrate.softmax(logits), val.labels)
    after = calibrate.expected_calibration_error(
        calibrate.softmax(logits / temperature), val.labels
    )
    log.info(
        "confidence temperature %.3f fitted on %d validation images: expected calibration "
        "error %.1f%% -> %.1f%% (float)",
        temperature,
        len(val),
        100 * before,
        100 * after,
    )
    info = {
        "method": "temperature",
        "temperature": round(temperature, 4),
        "fitted_on": "validation",
        "n": len(val),
        "ece_float_before": round(before, 4),
        "ece_float_after": round(after, 4),
    }
    return temperature, info, logits


def export_keras_file(
    model_path: Path | str,
    data_specs: list[str],
    out: Path | str,
    *,
    max_quant_drop: float | None = None,
    val_split: float | None = None,
    split_seed: int | None = None,
    tta: str | None = None,
    use_cache: bool = True,
) -> ExportResult:
    """``trapcount-train export``: export an existing ``.keras`` model.

    Labels, validation split and training summary come from the run's config.json beside
    the model when there is one (so the split is the one training held out); otherwise the
    labels are the data's classes and the split uses ``val_split``/``split_seed``
    (defaults 0.2 and 0). A finished run's config also gives the manifest the run's own
    training block and the export its accuracy curve, as if exported when it finished.
    """
    from trainer.models import count_macs  # Keras: see export_model

    model_path = Path(model_path).expanduser()
    model = load_keras_model(model_path)
    config: dict[str, Any] = {}
    config_path = model_path.parent / CONFIG_FILENAME
    if config_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            config = read_config(model_path.parent)
    hparams = config.get("hparams", {})
    # A COCO Camera Traps .json given bare is read with the options the run recorded for it.
    data_specs = with_recorded_options(data_specs, config.get("data"))
    fraction = val_split if val_split is not None else float(hparams.get("val_split", 0.2))
    seed = split_seed if split_seed is not None else int(hparams.get("split_seed", 0))
    limit = max_quant_drop if max_quant_drop is not None else 1.0
    size = tuple(int(v) for v in model.input_shape[1:3])
    data = load_datasets(data_specs, size, use_cache=use_cache)
    labels = labels_beside(model_path) or data.classes
    split = stratified_split(data, fraction, seed)
    train, val = align_to_labels(split.train, labels), align_to_labels(split.val, labels)
    training = {
        "datasets": [s if isinstance(s, dict) else str(s) for s in data_specs],
        "counts": data.counts(),
        "n_train": len(train),
        "n_val": len(val),
        "arch": hparams.get("arch", model.name),
        "val_split": fraction,
        "split_seed": seed,
        "params": int(model.count_params()),
        "exported_from": str(model_path.resolve()),
    }
    training["macs"] = count_macs(model)
    for key in ("epochs_done", "train_seconds", "code"):
        if key in config:
            training[key] = config[key]
    for key in (
        "epochs", "batch_size", "seed", "width", "optimizer", "lr", "label_smoothing", "ir",
    ):  # fmt: skip
        if key in hparams:
            training[key] = hparams[key]
    if hparams.get("grey"):  # recorded when used, so manifests from before read back alike
        training["grey"] = hparams["grey"]
    history = config.get("history") or []
    finished_run = config.get("status") in TRAINING_DONE and hparams
    if finished_run and val_split is None and split_seed is None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            run_summary = training_summary(
                config, HParams.from_dict(hparams), int(config["epochs_done"])
            )
            training = {**run_summary, "exported_from": training["exported_from"]}
    exported = export_model(
        model,
        train=train,
        val=val,
        out=out,
        arch=training["arch"],
        training=training,
        max_quant_drop=limit,
        calibration_count=int(hparams.get("calibration_images", 256)),
        seed=int(hparams.get("seed", 0)),
        extra_metrics={"history": history} if history else None,
        tta=tta if tta is not None else str(hparams.get("tta", "none")),
        grey_only=trained_grey_only(hparams),
    )
    if history:
        plot_run_curve(
            history,
            training["arch"],
            exported.metrics["int8_accuracy"],
            exported.out / CURVE_FILENAME,
        )
    return exported
