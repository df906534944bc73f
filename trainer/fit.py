"""Fitting a model into a run folder: the training loop, with a checkpoint after every
epoch, ``--resume``, ``--init-from`` and ``--stop-after``.

It does not export; trainer.run runs the teacher stage, this, then the export. What it
writes into the run folder (config.json first, then the checkpoints) is described in
trainer.run_folder.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from edge_agent import __version__
from edge_agent.manifest import utc_now_iso
from trainer.callbacks import EpochCheckpoint, EpochProgress, Lookahead, StopAfter
from trainer.cct import absolute_spec, is_coco_spec
from trainer.data import (
    KEYWORDS,
    DataError,
    Split,
    load_datasets,
    make_tf_dataset,
    stratified_split,
    training_steps,
)
from trainer.models import ARCHS, count_macs, init_whitening, make_model, replace_head
from trainer.recipe import DEFAULT_ARCH, HParams, hparams_for, validate_hparams
from trainer.run_folder import (
    CHECKPOINT_FILENAME,
    CHECKPOINT_STATE,
    CONFIG_FILENAME,
    LOOKAHEAD_STATE,
    TRAINING_DONE,
    RunError,
    existing_file,
    labels_beside,
    load_keras_model,
    prepare_out_dir,
    read_config,
    read_json,
    write_json,
)
from trainer.teacher import check_teachers_unchanged, load_teacher, teacher_digests

log = logging.getLogger("trapcount.trainer")


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


@dataclass
class _Start:
    """What a call trains from: a new run's arguments, or a resumed run's config.json."""

    hp: HParams
    data: list[str]
    init_from: str | None
    teacher_sha256: list[str] | None
    initial_epoch: int = 0
    prior_history: list[dict] = field(default_factory=list)


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
        start = _resumed(out) if resume else _new_run(data, hp, init_from)
        return _fit(start, out, resume, stop_after, strategy, use_cache)
    except (DataError, ValueError):
        if created and not any(out.iterdir()):
            out.rmdir()  # a run that never started leaves no empty folder behind
        raise


def _resumed(out: Path) -> _Start:
    config = read_config(out)
    if config.get("status") in TRAINING_DONE:
        raise RunError(
            f"the run in {out} already finished training; export it with "
            f"'trapcount-train export', or train further in a new run with "
            f"--init-from {out / 'model.keras'}"
        )
    hp = HParams.from_dict(config["hparams"])
    start = _Start(hp, config["data"], config.get("init_from"), config.get("teacher_sha256"))
    if hp.teacher and start.teacher_sha256:  # runs before 2026-12-03 recorded no digests
        check_teachers_unchanged(hp.teacher, start.teacher_sha256)
    state_path = out / CHECKPOINT_STATE
    if (out / CHECKPOINT_FILENAME).is_file() and state_path.is_file():
        state = read_json(state_path)
        start.initial_epoch = int(state["epochs_done"])
        start.prior_history = list(state.get("history", []))
    log.info("resuming %s after epoch %d of %d", out, start.initial_epoch, hp.epochs)
    return start


def _new_run(data, hp: HParams | None, init_from) -> _Start:
    hp = hp or hparams_for(DEFAULT_ARCH)
    validate_hparams(hp)
    if not data:
        raise DataError("no --data given")
    specs = [_absolute_spec(spec) for spec in data]
    # Both are checked before minutes of decoding images.
    if init_from is not None:
        init_from = existing_file(init_from, "model")
    if hp.teacher is not None:
        hp.teacher = [existing_file(path, "teacher model") for path in hp.teacher]
    digests = teacher_digests(hp.teacher) if hp.teacher else None
    return _Start(hp, specs, init_from, digests)


def _fit(
    start: _Start, out: Path, resume: bool, stop_after, strategy: str, use_cache: bool
) -> TrainResult:
    hp, initial_epoch, prior_history = start.hp, start.initial_epoch, start.prior_history
    dataset = load_datasets(start.data, hp.input_size, use_cache=use_cache)
    split = stratified_split(dataset, hp.val_split, hp.split_seed)
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
    if split.groups:  # COCO Camera Traps crops: whole locations, sequences, frames
        log.info("split by group (train / validation): %s", split_groups_text(split.groups))

    teacher = (
        load_teacher(hp.teacher, labels, hp.input_size, hp.teacher_tta) if hp.teacher else None
    )

    # A resumed run must not replay the shuffles and crops of its first epochs.
    keras.utils.set_random_seed(hp.seed + initial_epoch)
    dist = select_strategy(strategy)
    steps = training_steps(len(split.train), hp.batch_size)
    with dist.scope():
        if resume and initial_epoch > 0:
            model = load_keras_model(out / CHECKPOINT_FILENAME, compile=True)
        else:
            if start.init_from:
                model = model_for_finetuning(Path(start.init_from), labels, hp.input_size)
            else:
                model = make_model(hp.arch, (*hp.input_size, 3), len(labels), width=hp.width)
                if init_whitening(model, split.train.images):
                    log.info("whitening layer set from the training patches")
            compile_model(model, hp, steps)

    config = {
        "status": "training",
        "hparams": hp.to_dict(),
        "data": list(start.data),
        "init_from": start.init_from,
        # Teachers are named by path, and a path such as models/default/model.keras changes
        # when a new model is shipped: the digests say which file taught this run.
        "teacher_sha256": start.teacher_sha256,
        "labels": labels,
        "counts": dataset.counts(),
        "skipped_unreadable": dataset.skipped,
        "n_train": len(split.train),
        "n_val": len(split.val),
        # With COCO Camera Traps data: the groups held out whole (trainer.cct_plan), and the
        # training images with their repeats (--data-repeat) counted in n_train.
        "split": split.groups or None,
        "network": _network_name(model, hp, start.init_from),
        "params": int(model.count_params()),
        "macs": count_macs(model),
        "replicas": dist.num_replicas_in_sync,
        "code": code_version(),
        "command": sys.argv if Path(sys.argv[0]).name.startswith("trapcount") else None,
    }
    if resume:
        previous = read_config(out)
        config["started"] = previous.get("started")
        config["resumed"] = [*previous.get("resumed", []), utc_now_iso()]
    else:
        config["started"] = utc_now_iso()
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
        ir=hp.ir,
        grey=hp.grey,
    )
    if hp.ir:
        log.info("infrared-like look on %.0f%% of the training crops", 100 * hp.ir)
    if hp.grey:
        log.info("plain grey on %.0f%% of the other crops", 100 * hp.grey)
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


def _network_name(model, hp: HParams, init_from: str | None) -> str:
    """The network's own arch: with --init-from it is the loaded model's, whatever --arch
    chose for the hyperparameters (our factories name models by arch); a loaded network
    that none of them made is "unknown", not the recipe's arch."""
    if model.name in ARCHS:
        return model.name
    return "unknown" if init_from else hp.arch


def _absolute_spec(spec: str | Path | dict) -> str | dict:
    if is_coco_spec(spec):
        return absolute_spec(spec)
    if str(spec) in KEYWORDS:
        return str(spec)
    return str(Path(spec).expanduser().resolve())


def split_groups_text(groups: dict) -> str:
    """``location 52 / 9, seq 10 / 4, image 46 / 14; 1,277 / 395 images``."""
    kinds = [f"{k} {v['train']} / {v['val']}" for k, v in groups.items() if k != "images"]
    images = groups.get("images", {})
    return f"{', '.join(kinds)}; {images.get('train', 0):,} / {images.get('val', 0):,} images"


# -- the pieces of a fit ----------------------------------------------------------------------


def select_strategy(name: str = "auto"):
    """``auto``: MirroredStrategy over all GPUs when there is more than one, else the default.

    ``multiworker``: MultiWorkerMirroredStrategy, configured by the TF_CONFIG environment
    variable on every worker (see trainer/README.md).
    """
    # TensorFlow only here: Keras may run on another backend where this module is used for
    # its recipe pieces (benchmarks/recipe_check_jax.py runs compile_model under JAX).
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
    """What trained the run: trapcount's version and git commit, TensorFlow, Keras, Python."""
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
        # Recorded when installed; Keras may run on another backend (see select_strategy).
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
    except ImportError:
        pass
    info["python"] = sys.version.split()[0]
    return info
