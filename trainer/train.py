"""Training: one hyperparameter object, per-arch defaults, fit with checkpoints, export.

The Python API the CLI (and tests) use::

    from trainer.train import train_and_export
    model_dir = train_and_export(data=["frames/"], out="runs/tiny", arch="tiny", epochs=2)
    # model_dir holds model.keras, model.tflite, model.json, metrics.json, config.json,
    # confusion.png

Run folder layout while training: ``config.json`` (written first, so ``--resume`` knows the
data and hyperparameters), ``checkpoint.keras`` + ``checkpoint.json`` after every epoch
(model and optimizer state; removed once training finishes), then the exported files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_agent.manifest import sha256_file
from trainer.data import DataError, Split, load_datasets, make_tf_dataset, training_steps
from trainer.data import stratified_split as _split
from trainer.models import (
    ARCHS,
    UnknownArchError,
    count_macs,
    init_whitening,
    make_model,
    replace_head,
)
from trainer.tta import TTA_MODES

log = logging.getLogger("trapcount.trainer")

CONFIG_FILENAME = "config.json"
CHECKPOINT_FILENAME = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
LOOKAHEAD_STATE = "lookahead.npz"  # the Lookahead average at the checkpoint's epoch
# The views a teacher's softmax can be averaged over while it teaches (load_teacher).
TEACHER_TTA_MODES = ("none", "flip")


# -- hyperparameters ---------------------------------------------------------------------


@dataclass
class HParams:
    """Everything that decides what a run produces. Saved as ``config.json`` in the run."""

    arch: str = "resnet"
    epochs: int = 40
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd (Nesterov) | rmsprop | adam
    lr: float = 0.2  # peak learning rate
    schedule: str = "onecycle"  # constant | cosine | onecycle (linear warm-up, cosine decay)
    warmup_fraction: float = 0.15  # onecycle: share of all steps spent warming up
    warmup_start: float = 0.04  # onecycle: first learning rate, as a fraction of the peak
    momentum: float = 0.9  # sgd only
    # Decoupled (Keras applies lr * wd * w outside the momentum), so 5e-3 here is about the
    # classic coupled L2 5e-4 under momentum 0.9 (which amplifies coupled decay 10x).
    weight_decay: float = 5e-3
    label_smoothing: float = 0.1
    augment: bool = True  # pad + random crop + horizontal flip, in tf.data
    translate: int | None = None  # augment: crop offset in pixels (None: 1/8 of the side)
    cutout: int = 0  # augment: side of a square blanked at a random place (0: none)
    tta: str = "none"  # export: test-time augmentation baked into the .tflite (trainer.tta)
    lookahead: bool = False  # airbench's Lookahead: pull weights to their running average
    # Knowledge distillation: trained .keras classifiers (absolute paths) whose softmax on
    # each augmented crop, averaged over them, makes ``teacher_weight`` of the training
    # target; the rest is the label, smoothed. None: labels only.
    teacher: list[str] | None = None
    teacher_weight: float = 0.5
    # flip: each teacher's softmax is averaged over the crop and its mirror image, the
    # test-time augmentation that adds about a point to an airbench network as a
    # classifier (docs/benchmarks.md), for one more teacher forward pass per crop.
    teacher_tta: str = "none"
    # Train the teacher first, in the same command: this recipe for this many epochs on
    # labels alone, into OUT-teacher (trainer.own_teacher). None: a given teacher or none.
    teacher_epochs: int | None = None
    width: int | None = 16  # resnet, airbench: channels of the first layer / group
    input_size: tuple[int, int] = (32, 32)  # (height, width) the images are resized to
    val_split: float = 0.2  # stratified hold-out fraction
    split_seed: int = 0  # fixed, so export/evaluate recompute exactly the same split
    seed: int = 0  # weights, shuffling, augmentation
    calibration_images: int = 256  # int8 calibration set, drawn from the training split
    max_quant_drop: float = 1.0  # accuracy points int8 may lose against float

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HParams:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "input_size" in known:
            known["input_size"] = tuple(int(v) for v in known["input_size"])
        known["teacher"] = teacher_list(known.get("teacher"))
        return cls(**known)


def teacher_list(value: str | Path | list | tuple | None) -> list[str] | None:
    """One teacher path or several as a list (runs before 2026-12-03 saved one string)."""
    if value is None or value == [] or value == ():
        return None
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


# Per-arch defaults; CLI flags override them. ``seed`` is the original recipe exactly:
# RMSprop(1e-3), batch 128, 20 epochs, plain cross-entropy, no augmentation.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "seed": dict(
        epochs=20,
        batch_size=128,
        optimizer="rmsprop",
        lr=1e-3,
        schedule="constant",
        momentum=0.0,
        weight_decay=0.0,
        label_smoothing=0.0,
        augment=False,
        width=None,
    ),
    "resnet": dict(
        epochs=40,
        batch_size=256,
        optimizer="sgd",
        lr=0.2,
        schedule="onecycle",
        momentum=0.9,
        weight_decay=5e-3,
        label_smoothing=0.1,
        augment=True,
        width=16,
    ),
    # airbench94's recipe converted to Keras conventions: its lr 11.5 "per 1024 examples"
    # under momentum 0.85 is 1.5 on a mean loss at batch 1024; its weight decay works out
    # to 1.95e-5 of each weight per step at the peak, which Keras' decoupled decay
    # (lr * wd per step) gives with 1.3e-5. Warm-up from 0.2x to the peak over 23% of the
    # steps. Width 44 (44/176/176 channels) is the widest whose int8 .tflite stays under
    # 1 MB (968,120 bytes; width 48 is 1.15 MB). At airbench94's 2-pixel shifts and 20
    # epochs it overfit 40,000 JPEGs (97% train, 87.5% validation), so it trains for 70
    # epochs with airbench96's heavier augmentation: 4-pixel shifts and a 12-pixel cutout.
    "airbench": dict(
        epochs=70,
        batch_size=1024,
        optimizer="sgd",
        lr=1.5,
        schedule="onecycle",
        warmup_fraction=0.23,
        warmup_start=0.2,
        momentum=0.85,
        weight_decay=1.3e-5,
        label_smoothing=0.2,
        augment=True,
        translate=4,
        cutout=12,
        lookahead=True,
        width=44,
    ),
    "tiny": dict(
        epochs=3,
        batch_size=32,
        optimizer="adam",
        lr=1e-2,
        schedule="constant",
        momentum=0.0,
        weight_decay=0.0,
        label_smoothing=0.0,
        augment=False,
        width=None,
    ),
}


def hparams_for(arch: str, **overrides: Any) -> HParams:
    """The arch's defaults with ``overrides`` (None values are ignored) applied."""
    if arch not in ARCH_DEFAULTS:
        raise UnknownArchError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    values = {**ARCH_DEFAULTS[arch], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(values) - set(HParams.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    if "teacher" in values:
        values["teacher"] = teacher_list(values["teacher"])
    hp = HParams(arch=arch, **values)
    validate_hparams(hp)
    return hp


def validate_hparams(hp: HParams) -> None:
    problems = []
    if hp.epochs < 1:
        problems.append("epochs must be at least 1")
    if hp.batch_size < 1:
        problems.append("batch size must be at least 1")
    if not hp.lr > 0:
        problems.append("learning rate must be positive")
    if not 0.0 < hp.val_split < 1.0:
        problems.append("validation split must be between 0 and 1 (export measures on it)")
    if not 0.0 <= hp.label_smoothing < 1.0:
        problems.append("label smoothing must be in [0, 1)")
    if hp.optimizer not in ("sgd", "rmsprop", "adam"):
        problems.append(f"unknown optimizer {hp.optimizer!r} (sgd, rmsprop, adam)")
    if hp.schedule not in ("constant", "cosine", "onecycle"):
        problems.append(f"unknown schedule {hp.schedule!r} (constant, cosine, onecycle)")
    if min(hp.input_size) < 8:
        problems.append("input size must be at least 8x8")
    if not 0.0 < hp.warmup_start <= 1.0:
        problems.append("warm-up start must be in (0, 1]")
    if hp.translate is not None and hp.translate < 0:
        problems.append("translate must be 0 or more pixels")
    if not 0 <= hp.cutout <= min(hp.input_size):
        problems.append("cutout must be 0 (none) up to the input side in pixels")
    if hp.tta not in TTA_MODES:
        problems.append(f"unknown test-time augmentation {hp.tta!r} ({', '.join(TTA_MODES)})")
    if hp.calibration_images < 1:
        problems.append("calibration images must be at least 1")
    if not 0.0 < hp.teacher_weight <= 1.0:
        problems.append("teacher weight must be in (0, 1]")
    if hp.teacher_epochs is not None and hp.teacher_epochs < 1:
        problems.append("teacher epochs must be at least 1")
    if hp.teacher_tta not in TEACHER_TTA_MODES:
        problems.append(
            f"unknown teacher test-time augmentation {hp.teacher_tta!r} "
            f"({', '.join(TEACHER_TTA_MODES)})"
        )
    if problems:
        raise ValueError("; ".join(problems))


# -- errors --------------------------------------------------------------------------------


class RunError(ValueError):
    """The run folder cannot be used (unwritable, already holds a run, nothing to resume)."""


# -- pieces --------------------------------------------------------------------------------


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


def select_strategy(name: str = "auto"):
    """``auto``: MirroredStrategy over all GPUs when there is more than one, else the default.

    ``multiworker``: MultiWorkerMirroredStrategy, configured by the TF_CONFIG environment
    variable on every worker (see trainer/README.md).
    """
    import tensorflow as tf

    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name != "auto":
        raise ValueError(f"unknown strategy {name!r} (auto, mirrored, multiworker)")
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(hp: HParams, steps_per_epoch: int):

    total = max(hp.epochs * steps_per_epoch, 1)
    if hp.schedule == "constant":
        lr: Any = hp.lr
    elif hp.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(hp.lr, decay_steps=total, alpha=0.0)
    else:  # onecycle: linear warm-up from warmup_start x peak to the peak, cosine to 0
        warmup = max(int(total * hp.warmup_fraction), 1)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=hp.lr * hp.warmup_start,
            decay_steps=max(total - warmup, 1),
            alpha=0.0,
            warmup_target=hp.lr,
            warmup_steps=warmup,
        )
    decay = hp.weight_decay or None
    if hp.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=hp.momentum, nesterov=True, weight_decay=decay
        )
    if hp.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate=lr, weight_decay=decay)


def compile_model(model, hp: HParams, steps_per_epoch: int) -> None:

    # With a teacher the pipeline smooths the label part of the target itself; the loss
    # must not smooth the teacher's distribution a second time.
    smoothing = 0.0 if hp.teacher else hp.label_smoothing
    model.compile(
        optimizer=make_optimizer(hp, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
        metrics=["accuracy"],
    )


def labels_beside(model_path: Path) -> list[str] | None:
    """The label list saved next to a ``.keras`` model (model.json, else config.json)."""
    folder = Path(model_path).parent
    for name, key in (("model.json", "labels"), (CONFIG_FILENAME, "labels")):
        path = folder / name
        if path.is_file():
            try:
                labels = json.loads(path.read_text(encoding="utf-8")).get(key)
            except (OSError, ValueError):
                continue
            if labels:
                return [str(v) for v in labels]
    return None


def load_teacher(
    paths: list[str], labels: list[str], input_size: tuple[int, int], tta: str = "none"
):
    """The distillation teacher: trained classifiers whose softmax has one output per label
    of this run, in the same order (checked against the labels saved beside each). Several
    are averaged into one model, an ensemble: differently trained networks err on
    different crops, so their average is usually a better teacher than each. With
    ``tta="flip"`` every teacher also sees the mirror image of the crop and its two
    softmaxes are averaged."""
    teachers = [_checked_teacher(path, labels, input_size) for path in paths]
    if len(teachers) == 1 and tta == "none":
        return teachers[0]

    # A plain function, not a keras.Model: two runs of one arch share layer names.
    def ensemble(batch, training=False):
        views = [batch, keras.ops.flip(batch, axis=2)] if tta == "flip" else [batch]
        outputs = [t(view, training=training) for t in teachers for view in views]
        return keras.ops.mean(keras.ops.stack(outputs), axis=0)

    return ensemble


def _checked_teacher(path: str, labels: list[str], input_size: tuple[int, int]):
    teacher = load_keras_model(path)
    outputs = teacher.output_shape[-1]
    if outputs != len(labels):
        raise DataError(f"teacher {path} has {outputs} outputs; this run has {len(labels)} labels")
    if tuple(teacher.input_shape[1:3]) != tuple(input_size):
        raise DataError(
            f"teacher {path} takes {teacher.input_shape[1]}x{teacher.input_shape[2]} images; "
            f"this run uses {input_size[0]}x{input_size[1]}"
        )
    saved = labels_beside(Path(path))
    if saved is not None and saved != list(labels):
        raise DataError(f"teacher {path} was trained on other labels or another label order")
    teacher.trainable = False
    log.info("distilling from %s (%s parameters)", path, f"{teacher.count_params():,}")
    return teacher


# Keras 3 also loads the older HDF5 format, which is not a zip archive.
LEGACY_KERAS_SUFFIXES = (".h5", ".hdf5")


def load_keras_model(path: Path | str, *, compile: bool = False):
    """Load a ``.keras`` file with a one-line error instead of Keras' traceback."""

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


def model_for_finetuning(path: Path, labels: list[str], input_size: tuple[int, int]):
    """``--init-from``: an existing model, with a new head when the label set changed."""
    model = load_keras_model(path)
    expected = (*input_size, 3)
    if tuple(model.input_shape[1:]) != expected:
        raise DataError(
            f"{path} takes input {tuple(model.input_shape[1:])}, but training uses {expected}"
        )
    old_labels = labels_beside(path)
    outputs = int(model.output_shape[-1])
    if old_labels is not None and len(old_labels) != outputs:
        old_labels = None  # the file beside it is not this model's
    if old_labels == labels:
        log.info("init-from %s: same %d labels, fine-tuning every layer", path, outputs)
        return model
    if old_labels is None and outputs == len(labels):
        log.info("init-from %s: no label list beside it; assuming the same %d", path, outputs)
        return model
    added = sorted(set(labels) - set(old_labels or []))
    dropped = sorted(set(old_labels or []) - set(labels))
    log.info(
        "init-from %s: new head %d -> %d outputs (added: %s; dropped: %s)",
        path,
        outputs,
        len(labels),
        ", ".join(added) or "none",
        ", ".join(dropped) or "none",
    )
    return replace_head(model, labels, old_labels)


def code_version() -> dict[str, str]:
    from edge_agent import __version__

    info = {"trapcount": __version__}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "trainer", "edge_agent"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["git_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
    except ImportError:
        pass
    info["python"] = sys.version.split()[0]
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
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


# -- callbacks -----------------------------------------------------------------------------


class EpochProgress(keras.callbacks.Callback):
    """A progress bar per epoch: redrawn in place on a terminal; in a log file, one line
    per epoch (plus a progress line every 30 s when an epoch is long)."""

    def __init__(self, epochs: int, steps: int, stream=None) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.history: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.started = self.last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        done = batch + 1
        if self.tty and (now - self.last > 0.2 or done == self.steps):
            filled = int(30 * done / self.steps)
            bar = "#" * filled + "." * (30 - filled)
            loss = (logs or {}).get("loss", float("nan"))
            print(
                f"\repoch {self.epoch + 1}/{self.epochs} [{bar}] {done}/{self.steps} "
                f"loss {loss:.4f} {now - self.started:.0f}s",
                end="",
                file=self.stream,
                flush=True,
            )
            self.last = now
        elif not self.tty and now - self.last >= 30:
            log.info(
                "  epoch %d/%d: %d/%d steps (%.0f%%) %.0f s",
                self.epoch + 1,
                self.epochs,
                done,
                self.steps,
                100 * done / self.steps,
                now - self.started,
            )
            self.last = now

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = time.monotonic() - self.started
        lr = _current_lr(self.model)
        if self.tty:
            print("\r" + " " * 100 + "\r", end="", file=self.stream, flush=True)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.0f s",
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
            lr,
            seconds,
        )
        row = {"epoch": epoch + 1, "seconds": round(seconds, 2), "lr": lr}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.history.append(row)


def _current_lr(model) -> float:
    try:
        optimizer = model.optimizer
        value = optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(value))
    except Exception:  # an lr is a nicety in a log line, never worth failing for
        return float("nan")


class EpochCheckpoint(keras.callbacks.Callback):
    """Model + optimizer state after every epoch, written atomically, for ``--resume``."""

    def __init__(self, out: Path, progress: EpochProgress, prior: list[dict]) -> None:
        super().__init__()
        self.out, self.progress, self.prior = out, progress, prior

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.out / ".checkpoint.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.out / CHECKPOINT_FILENAME)
        state = {"epochs_done": epoch + 1, "history": self.prior + self.progress.history}
        write_json(self.out / CHECKPOINT_STATE, state)


class Lookahead(keras.callbacks.Callback):
    """airbench's Lookahead: every ``every`` steps, move a running average of all weights
    (BatchNorm statistics included) towards the network by ``1 - decay``, then set the
    network to that average; ``decay`` rises as ``base * (step / total) ** power``, so it
    does nothing early and smooths hard late; the last step copies the average in.

    With ``state_path``, the average is saved there after every epoch (beside the epoch
    checkpoint) and a resumed run starting at ``initial_epoch`` takes it back, so
    ``--resume`` ends on the same weights as an uninterrupted run."""

    def __init__(
        self,
        total_steps: int,
        every: int = 5,
        base: float = 0.95**5,
        power=3.0,
        *,
        state_path: Path | None = None,
        initial_epoch: int = 0,
    ):
        super().__init__()
        self.total, self.every, self.base, self.power = total_steps, every, base, power
        self.state_path, self.initial_epoch = state_path, initial_epoch
        self.average: list[np.ndarray] | None = None

    def on_train_begin(self, logs=None):
        current = [np.array(w, dtype=np.float32) for w in self.model.get_weights()]
        self.average = self._saved_average(current) or current

    def _saved_average(self, current: list[np.ndarray]) -> list[np.ndarray] | None:
        if self.state_path is None or self.initial_epoch == 0 or not self.state_path.is_file():
            return None
        with np.load(self.state_path) as saved:
            epoch = int(saved["epoch"])
            average = [saved[f"w{i}"] for i in range(len(saved.files) - 1)]
        shapes_match = [a.shape for a in average] == [c.shape for c in current]
        if epoch != self.initial_epoch or not shapes_match:
            log.warning(
                "Lookahead average in %s is from epoch %d, not %d: starting it afresh",
                self.state_path,
                epoch,
                self.initial_epoch,
            )
            return None
        log.info("Lookahead average restored from epoch %d", epoch)
        return average

    def on_epoch_end(self, epoch, logs=None):
        if self.state_path is None or self.average is None:
            return
        tmp = self.state_path.with_name(".lookahead.tmp.npz")
        arrays = {f"w{i}": a for i, a in enumerate(self.average)}
        with open(tmp, "wb") as handle:
            np.savez(handle, epoch=np.int64(epoch + 1), **arrays)
        os.replace(tmp, self.state_path)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step >= self.total:
            decay = 1.0
        elif step % self.every == 0:
            decay = self.base * (step / self.total) ** self.power
        else:
            return
        weights = self.model.get_weights()
        for average, current in zip(self.average, weights, strict=True):
            average += (1.0 - decay) * (current - average)
        self.model.set_weights(self.average)


class StopAfter(keras.callbacks.Callback):
    """``--stop-after N``: end this invocation after N epochs (resume later)."""

    def __init__(self, last_epoch: int) -> None:
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.last_epoch:
            self.model.stop_training = True


# -- training --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: Any
    split: Split
    hp: HParams
    out: Path
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = True
    epochs_done: int = 0
    initial_epoch: int = 0  # where this call started (a resumed run's checkpoint)


def train(
    data: list[str] | tuple[str, ...] | None,
    out: Path | str,
    hp: HParams | None = None,
    *,
    resume: bool = False,
    init_from: Path | str | None = None,
    stop_after: int | None = None,
    strategy: str = "auto",
    use_cache: bool = True,
) -> TrainResult:
    """Fit a model on ``data`` into the run folder ``out``; does not export.

    ``resume=True`` continues the run in ``out`` from its last checkpoint with the data and
    hyperparameters saved in its config.json (``data`` and ``hp`` are then ignored).
    """

    created = not Path(out).expanduser().exists()
    out = prepare_out_dir(Path(out), resume=resume)
    try:
        return _train(data, out, hp, resume, init_from, stop_after, strategy, use_cache)
    except (DataError, ValueError):
        if created and not any(out.iterdir()):
            out.rmdir()  # a run that never started leaves no empty folder behind
        raise


def _train(data, out, hp, resume, init_from, stop_after, strategy, use_cache) -> TrainResult:
    prior_history: list[dict] = []
    initial_epoch = 0
    if resume:
        config = json.loads((out / CONFIG_FILENAME).read_text(encoding="utf-8"))
        if config.get("status") in ("trained", "finished", "rejected"):
            raise RunError(
                f"the run in {out} already finished training; export it with "
                f"'trapcount-train export', or train further in a new run with "
                f"--init-from {out / 'model.keras'}"
            )
        hp = HParams.from_dict(config["hparams"])
        data = config["data"]
        init_from = config.get("init_from")
        teacher_sha256 = config.get("teacher_sha256")
        if hp.teacher and teacher_sha256:  # runs before 2026-12-03 recorded no digests
            _check_teachers_unchanged(hp.teacher, teacher_sha256)
        state_path = out / CHECKPOINT_STATE
        if (out / CHECKPOINT_FILENAME).is_file() and state_path.is_file():
            state = json.loads(state_path.read_text(encoding="utf-8"))
            initial_epoch = int(state["epochs_done"])
            prior_history = list(state.get("history", []))
        log.info("resuming %s after epoch %d of %d", out, initial_epoch, hp.epochs)
    else:
        hp = hp or hparams_for("resnet")
        validate_hparams(hp)
        if not data:
            raise DataError("no --data given")
        data = [_absolute_spec(spec) for spec in data]
        # Both are checked before minutes of decoding images.
        if init_from is not None:
            init_from = _existing_file(init_from, "model")
        if hp.teacher is not None:
            hp.teacher = [_existing_file(path, "teacher model") for path in hp.teacher]
        teacher_sha256 = [sha256_file(path) for path in hp.teacher] if hp.teacher else None

    dataset = load_datasets(data, hp.input_size, use_cache=use_cache)
    split = _split(dataset, hp.val_split, hp.split_seed)
    labels = dataset.classes
    if len(split.val) == 0:
        raise DataError("the validation split is empty; add images or raise --val-split")
    log.info(
        "split (seed %d): %d train, %d validation; classes: %s",
        hp.split_seed,
        len(split.train),
        len(split.val),
        ", ".join(f"{k}={v}" for k, v in dataset.counts().items()),
    )

    teacher = (
        load_teacher(hp.teacher, labels, hp.input_size, hp.teacher_tta) if hp.teacher else None
    )

    # A resumed run must not replay the shuffles and crops of its first epochs.
    keras.utils.set_random_seed(hp.seed + initial_epoch)
    dist = select_strategy(strategy)
    replicas = dist.num_replicas_in_sync
    steps = training_steps(len(split.train), hp.batch_size)
    with dist.scope():
        if resume and initial_epoch > 0:
            model = load_keras_model(out / CHECKPOINT_FILENAME, compile=True)
        else:
            if init_from:
                model = model_for_finetuning(Path(init_from), labels, hp.input_size)
            else:
                model = make_model(hp.arch, (*hp.input_size, 3), len(labels), width=hp.width)
                if init_whitening(model, split.train.images):
                    log.info("whitening layer set from the training patches")
            compile_model(model, hp, steps)

    config = {
        "status": "training",
        "hparams": hp.to_dict(),
        "data": list(data),
        "init_from": init_from,
        # Teachers are named by path, and a path such as models/default/model.keras changes
        # when a new model is shipped: the digests say which file taught this run.
        "teacher_sha256": teacher_sha256,
        "labels": labels,
        "counts": dataset.counts(),
        "skipped_unreadable": dataset.skipped,
        "n_train": len(split.train),
        "n_val": len(split.val),
        # The network's own arch: with --init-from it is the loaded model's, whatever
        # --arch chose for the hyperparameters (our factories name models by arch); a loaded
        # network that none of them made is "unknown", not the recipe's arch.
        "network": model.name if model.name in ARCHS else "unknown" if init_from else hp.arch,
        "params": int(model.count_params()),
        "macs": count_macs(model),
        "replicas": replicas,
        "code": code_version(),
        "command": sys.argv if Path(sys.argv[0]).name.startswith("trapcount") else None,
    }
    if resume:
        previous = json.loads((out / CONFIG_FILENAME).read_text(encoding="utf-8"))
        config["started"] = previous.get("started")
        config["resumed"] = [*previous.get("resumed", []), _now()]
    else:
        config["started"] = _now()
    write_json(out / CONFIG_FILENAME, config)
    log.info(
        "model %s: %s parameters, %s MACs per image; %d epochs of %d steps, batch %d",
        hp.arch,
        f"{config['params']:,}",
        f"{config['macs']:,}",
        hp.epochs,
        steps,
        hp.batch_size,
    )

    train_ds = make_tf_dataset(
        split.train.images,
        split.train.labels,
        len(labels),
        hp.batch_size,
        training=True,
        augment=hp.augment,
        translate=hp.translate,
        cutout=hp.cutout,
        seed=hp.seed,
        soft_targets=teacher,
        soft_weight=hp.teacher_weight,
        label_smoothing=hp.label_smoothing,
    )
    val_ds = make_tf_dataset(
        split.val.images,
        split.val.labels,
        len(labels),
        max(hp.batch_size, 256),
        training=False,
        augment=False,
        seed=hp.seed,
    )
    progress = EpochProgress(hp.epochs, steps)
    callbacks = [progress, EpochCheckpoint(out, progress, prior_history)]
    if hp.lookahead:
        state = out / LOOKAHEAD_STATE
        callbacks.append(
            Lookahead(hp.epochs * steps, state_path=state, initial_epoch=initial_epoch)
        )
    if stop_after is not None:
        callbacks.append(StopAfter(initial_epoch + stop_after))

    started = time.monotonic()
    if initial_epoch < hp.epochs:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=hp.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=0,
        )
    seconds = time.monotonic() - started
    history = prior_history + progress.history
    epochs_done = int(history[-1]["epoch"]) if history else initial_epoch
    finished = epochs_done >= hp.epochs
    config["train_seconds"] = round(
        seconds + sum(float(r.get("seconds", 0)) for r in prior_history), 1
    )
    config["epochs_done"] = epochs_done
    config["history"] = history
    config["status"] = "trained" if finished else "stopped"
    write_json(out / CONFIG_FILENAME, config)
    if finished:
        for name in (CHECKPOINT_FILENAME, CHECKPOINT_STATE, LOOKAHEAD_STATE):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    else:
        log.info(
            "stopped after epoch %d of %d; continue with: trapcount-train train --out %s --resume",
            epochs_done,
            hp.epochs,
            out,
        )
    return TrainResult(model, split, hp, out, config, history, finished, epochs_done, initial_epoch)


def _existing_file(path: str | Path, what: str) -> str:
    """``path`` made absolute (runs record where their inputs were), or a one-line error."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise DataError(f"{what} not found: {resolved}")
    return str(resolved)


def _check_teachers_unchanged(paths: list[str], recorded: list[str]) -> None:
    """A resumed student must go on learning from the teachers it started with."""
    for path, digest in zip(paths, recorded, strict=True):
        if sha256_file(_existing_file(path, "teacher model")) != digest:
            raise DataError(
                f"teacher {path} changed since the run started (sha256 was {digest[:12]}...); "
                "put the original back to resume"
            )


def _absolute_spec(spec: str | Path) -> str:
    from trainer.data import KEYWORDS

    if str(spec) in KEYWORDS:
        return str(spec)
    return str(Path(spec).expanduser().resolve())


def _now() -> str:
    from edge_agent.manifest import utc_now_iso

    return utc_now_iso()


def training_summary(result: TrainResult) -> dict[str, Any]:
    """The manifest's ``training`` block: what data, how much, which recipe."""
    return summary_from_config(result.config, result.hp, result.epochs_done)


def summary_from_config(cfg: dict[str, Any], hp: HParams, epochs_done: int) -> dict[str, Any]:
    """:func:`training_summary` from a run's config.json (for exporting a finished run
    again, for instance with a newer exporter)."""
    network = cfg.get("network", hp.arch)
    return {
        "datasets": cfg["data"],
        "counts": cfg["counts"],
        "n_train": cfg["n_train"],
        "n_val": cfg["n_val"],
        "skipped_unreadable": cfg["skipped_unreadable"],
        "arch": network,
        "recipe": hp.arch,  # whose defaults the hyperparameters started from
        "width": hp.width if network == hp.arch else None,
        "epochs": epochs_done,
        "batch_size": hp.batch_size,
        "optimizer": hp.optimizer,
        "lr": hp.lr,
        "schedule": hp.schedule,
        "weight_decay": hp.weight_decay,
        "label_smoothing": hp.label_smoothing,
        "augment": hp.augment,
        "translate": hp.translate,
        "cutout": hp.cutout,
        "tta": hp.tta,
        "lookahead": hp.lookahead,
        "seed": hp.seed,
        "val_split": hp.val_split,
        "split_seed": hp.split_seed,
        "params": cfg["params"],
        "macs": cfg["macs"],
        "train_seconds": cfg.get("train_seconds"),
        "init_from": cfg.get("init_from"),
        "teacher": hp.teacher,
        "teacher_sha256": cfg.get("teacher_sha256"),
        "teacher_weight": hp.teacher_weight if hp.teacher else None,
        "teacher_tta": hp.teacher_tta if hp.teacher else None,
        "teacher_epochs": hp.teacher_epochs,
        "code": cfg["code"],
    }


def train_and_export(
    data: list[str | Path] | tuple[str | Path, ...] | None,
    out: Path | str,
    arch: str = "resnet",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    lr: float | None = None,
    max_quant_drop: float | None = None,
    resume: bool = False,
    init_from: Path | str | None = None,
    stop_after: int | None = None,
    use_cache: bool = True,
    **hparams: Any,
) -> Path:
    """Train and export into ``out``; return the model folder (``out``).

    Other keyword arguments are :class:`HParams` fields (``val_split``, ``augment``, ...).
    With ``stop_after`` the run may stop before its last epoch; then nothing is exported
    and ``out`` holds a checkpoint for ``resume=True``. With ``teacher_epochs`` the teacher
    is trained first into ``OUT-teacher`` (trainer.own_teacher); if it stops there, that
    folder is returned and calling again with the same arguments continues it.
    Raises ``trainer.export.QuantizationDropError`` when int8 loses more than
    ``max_quant_drop`` points (the run folder then keeps metrics but no deployable model).
    """
    from trainer.export import export_run

    hp = None
    if not resume:
        hp = hparams_for(
            arch,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            lr=lr,
            max_quant_drop=max_quant_drop,
            **hparams,
        )
    specs = [str(d) for d in data] if data else None
    if hp is not None and hp.teacher_epochs:
        from trainer.own_teacher import teacher_first

        stage = teacher_first(specs or [], out, hp, stop_after=stop_after, use_cache=use_cache)
        if not stage.student_may_start:
            return stage.folder
        stop_after = stage.student_stop_after
    result = train(
        specs,
        out,
        hp,
        resume=resume,
        init_from=init_from,
        stop_after=stop_after,
        use_cache=use_cache,
    )
    if not result.finished:
        return result.out
    if max_quant_drop is not None:
        result.hp.max_quant_drop = max_quant_drop
    export_run(result)
    return result.out
