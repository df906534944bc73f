"""The run folder: the files a training run writes into ``--out``, and how to read them.

While training: ``config.json`` first (data, hyperparameters, labels, counts, code version
and status, so that ``--resume`` knows what to continue), then after every epoch
``checkpoint.keras`` + ``checkpoint.json`` (and ``lookahead.npz`` for airbench), removed
once training finishes. Then the export: ``model.keras``, ``model.tflite``, ``model.json``
(``edge_agent.manifest``), ``metrics.json``, ``confusion.png`` and ``curve.png``; when the
quantization guard fires ``model.rejected.tflite`` instead of the model and manifest.

The status in config.json goes ``training`` -> ``stopped`` (an invocation ended early;
``--resume`` continues) or ``trained`` -> ``finished`` (exported) or ``rejected``.

Every module that reads or writes a run folder takes the names and helpers from here.
Keras is imported only to load a model (:func:`load_keras_model`).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data import DataError
from trainer.recipe import ARCHS, HParams, recorded_hparams

CONFIG_FILENAME = "config.json"
CHECKPOINT_FILENAME = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
LOOKAHEAD_STATE = "lookahead.npz"  # the Lookahead average at the checkpoint's epoch
KERAS_FILENAME = "model.keras"  # the float model as trained
METRICS_FILENAME = "metrics.json"
CONFUSION_FILENAME = "confusion.png"  # the int8 confusion matrix on the validation split
CURVE_FILENAME = "curve.png"  # accuracy by epoch
REJECTED_FILENAME = "model.rejected.tflite"
# model.tflite and model.json are edge_agent.manifest's MODEL_FILENAME, MANIFEST_FILENAME.

# Statuses of a run that trained to its last epoch: there is nothing left to --resume.
TRAINING_DONE = ("trained", "finished", "rejected")


class RunError(ValueError):
    """The run folder cannot be used (unwritable, already holds a run, nothing to resume)."""


def prepare_out_dir(out: Path, *, resume: bool) -> Path:
    """Create the run folder and prove it is writable before hours of training."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None
    has_run = (out / CONFIG_FILENAME).exists()
    if resume and not has_run:
        raise RunError(f"nothing to resume in {out} (no {CONFIG_FILENAME})")
    if not resume and has_run:
        raise RunError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    return out


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_config(folder: Path) -> dict[str, Any]:
    """A run folder's config.json."""
    return read_json(Path(folder) / CONFIG_FILENAME)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically: an interrupted run never leaves half a config.json."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def existing_file(path: str | Path, what: str) -> str:
    """``path`` made absolute (runs record where their inputs were), or a one-line error."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise DataError(f"{what} not found: {resolved}")
    return str(resolved)


def training_summary(config: dict[str, Any], hp: HParams, epochs_done: int) -> dict[str, Any]:
    """The manifest's ``training`` block from a run's config.json: what data, how much,
    which recipe (every recorded hyperparameter of ``hp``)."""
    network = config.get("network", hp.arch)
    # COCO Camera Traps sources: the groups held out whole; runs without one have no key
    # (their manifests were written before it existed).
    split = {"split": config["split"]} if config.get("split") is not None else {}
    return {
        "datasets": config["data"],
        "counts": config["counts"],
        "n_train": config["n_train"],
        "n_val": config["n_val"],
        "skipped_unreadable": config["skipped_unreadable"],
        **split,
        "arch": network,
        "recipe": hp.arch,  # whose defaults the hyperparameters started from
        **recorded_hparams(hp),
        # A fine-tuned network keeps its own width, whatever the recipe says.
        "width": hp.width if network == hp.arch else None,
        "epochs": epochs_done,
        # The distillation settings mean nothing without a teacher.
        "teacher_weight": hp.teacher_weight if hp.teacher else None,
        "teacher_tta": hp.teacher_tta if hp.teacher else None,
        "teacher_sha256": config.get("teacher_sha256"),
        "params": config["params"],
        "macs": config["macs"],
        "train_seconds": config.get("train_seconds"),
        "init_from": config.get("init_from"),
        "code": config["code"],
    }


# -- saved models ----------------------------------------------------------------------------

# Keras 3 also loads the older HDF5 format, which is not a zip archive.
LEGACY_KERAS_SUFFIXES = (".h5", ".hdf5")


def labels_beside(model_path: Path) -> list[str] | None:
    """The label list saved next to a ``.keras`` model (model.json, else config.json)."""
    folder = Path(model_path).parent
    for name, key in (("model.json", "labels"), (CONFIG_FILENAME, "labels")):
        path = folder / name
        if path.is_file():
            try:
                labels = read_json(path).get(key)
            except (OSError, ValueError):
                continue
            if labels:
                return [str(v) for v in labels]
    return None


def saved_network_arch(path: Path) -> str | None:
    """The arch a saved .keras model was built as (our models are named after their arch),
    read from the archive's config.json without importing Keras; None when it is not one
    of ours or not a readable .keras file."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    name = config.get("config", {}).get("name") if isinstance(config, dict) else None
    return name if name in ARCHS else None


def load_keras_model(path: Path | str, *, compile: bool = False):
    """Load a ``.keras`` file with a one-line error instead of Keras' traceback."""
    # Keras (seconds to import) only when a model is loaded: reading a run folder does not
    # need it. trainer.models and trainer.tta register the custom layers saved models hold.
    import keras

    import trainer.models
    import trainer.tta  # noqa: F401

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"model not found: {path}")
    # A .keras file is a zip archive. Keras reports any other file under that name (random
    # bytes, a truncated copy) as "File not found: filepath=...", which sends people looking
    # for a file that is right there.
    if path.suffix.lower() not in LEGACY_KERAS_SUFFIXES and not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a Keras 3 .keras archive (damaged or another format)")
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot load Keras model {path}: {first}") from None
