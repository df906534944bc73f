"""The recipe: every hyperparameter of a run, declared once, and each arch's defaults.

:class:`HParams` is the one place a hyperparameter is declared. Its fields are what a
run's ``config.json`` saves under ``hparams`` (``--resume`` reads them back). A field with
a :class:`Flag` is also an option of ``trapcount-train train``: ``trainer.options``
generates the option (name, type, help, the defaults shown) from the field and from
``ARCH_DEFAULTS``. The fields not marked ``recorded=False`` are the hyperparameters the
manifest's training block records (:func:`recorded_hparams`).

Neither Keras nor click is imported here: ``trapcount-train --help`` reads this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ARCH = "resnet"
OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("constant", "cosine", "onecycle")
# trainer.tta.TTA_MODES, spelled out so that --help does not import Keras (a test checks
# that the two agree).
TTA_MODES = ("none", "flip", "flip-shift")
# The views a teacher's softmax can be averaged over while it teaches (trainer.teacher).
TEACHER_TTA_MODES = ("none", "flip")


class UnknownArchError(ValueError):
    pass


@dataclass(frozen=True)
class Flag:
    """How a hyperparameter appears as an option of ``trapcount-train train``: ``--`` and
    the field's name with dashes; the option's type follows the field's type."""

    help: str  # what the option does; its defaults are appended from the recipe
    minimum: int | float | None = None  # the lowest value accepted (a click range)
    choices: tuple[str, ...] | None = None
    path: bool = False  # the values are files (a list field: the option repeats)
    side: bool = False  # the option gives one side N; the field holds (N, N)
    none: str | None = None  # what a None default means, for --help (None: not shown)


def _hp(default: Any, flag: Flag | None = None, *, recorded: bool = True) -> Any:
    """A hyperparameter field: ``flag`` makes it a ``train`` option; ``recorded=False``
    leaves it out of the manifest's training block."""
    return field(default=default, metadata={"flag": flag, "recorded": recorded})


@dataclass
class HParams:
    """Everything that decides what a run produces. Saved as ``config.json`` in the run.

    The class defaults are resnet's recipe (the default arch); ``ARCH_DEFAULTS`` holds what
    each arch sets."""

    arch: str = _hp(DEFAULT_ARCH, recorded=False)  # whose defaults the others started from
    epochs: int = _hp(40, Flag("Epochs.", minimum=1))
    batch_size: int = _hp(256, Flag("Batch size.", minimum=1))
    optimizer: str = _hp("sgd")  # sgd (Nesterov) | rmsprop | adam
    lr: float = _hp(0.2, Flag("Peak learning rate."))
    schedule: str = _hp("onecycle")  # constant | cosine | onecycle (linear warm-up, cosine)
    warmup_fraction: float = _hp(0.15, recorded=False)  # onecycle: share of steps warming up
    warmup_start: float = _hp(0.04, recorded=False)  # onecycle: first lr, a fraction of peak
    momentum: float = _hp(0.9, recorded=False)  # sgd only
    # Decoupled (Keras applies lr * wd * w outside the momentum), so 5e-3 here is about the
    # classic coupled L2 5e-4 under momentum 0.9 (which amplifies coupled decay 10x).
    weight_decay: float = _hp(
        5e-3, Flag("Decoupled weight decay per step, times the learning rate.", minimum=0.0)
    )
    label_smoothing: float = _hp(0.1, Flag("Label smoothing."))
    augment: bool = _hp(True, Flag("Pad+crop+flip."))  # in tf.data, never in the model
    translate: int | None = _hp(
        None, Flag("Augmentation crop offset in pixels.", minimum=0, none="1/8 of the side")
    )
    cutout: int = _hp(
        0, Flag("Augmentation: blank a random square of this side in pixels (0: none).", minimum=0)
    )
    # Infrared: the probability that a training crop becomes IR-like (trainer.looks:
    # grey in three equal channels, random contrast, gamma, noise, some blur), after the
    # shift, flip and cutout; a teacher still sees it in colour. 0 for every arch, so
    # runs and config.json files from before it train as they did.
    ir: float = _hp(
        0.0,
        Flag(
            "Probability that a training crop becomes infrared-like: grey (R=G=B), random "
            "contrast and gamma, sensor noise, some blur. A --teacher sees the colour crop.",
            minimum=0.0,
        ),
    )
    # Plain grey (trainer.looks.plain_grey): the probability that a crop the IR look did not
    # take is turned grey, luma only. --ir P --grey 1: every crop grey, P of them with the
    # IR look (a grey companion, trainer.pair). 0 for every arch, as ir.
    grey: float = _hp(
        0.0,
        Flag(
            "Probability that a training crop the infrared-like look did not take is turned "
            "plain grey (R=G=B, luma only). --ir P --grey 1: every crop grey, for a grey "
            "companion (trapcount-train pair).",
            minimum=0.0,
        ),
    )
    tta: str = _hp(  # export: test-time augmentation baked into the .tflite (trainer.tta)
        "none",
        Flag(
            "Test-time augmentation baked into the .tflite: flip averages the crop and its "
            "mirror image (twice the per-crop cost); flip-shift adds that pair shifted one "
            "pixel each way, airbench's level 2 (6 times the cost).",
            choices=TTA_MODES,
        ),
    )
    lookahead: bool = _hp(False)  # airbench's Lookahead: pull weights to their running average
    # Knowledge distillation: trained .keras classifiers (absolute paths) whose softmax on
    # each augmented crop, averaged over them, makes ``teacher_weight`` of the training
    # target; the rest is the label, smoothed. None: labels only.
    teacher: list[str] | None = _hp(  # noqa: RUF009 - _hp gives a field(default=None)
        None,
        Flag(
            "Distil: a trained .keras classifier with the same labels; its softmax on each "
            "augmented crop becomes part of the training target. Repeat for an ensemble: "
            "their softmaxes are averaged.",
            path=True,
        ),
    )
    teacher_weight: float = _hp(
        0.5, Flag("Share of the target taken from --teacher; the rest is the label.")
    )
    # flip: each teacher's softmax is averaged over the crop and its mirror image, the
    # test-time augmentation that adds about a point to an airbench network as a
    # classifier (docs/benchmarks.md), for one more teacher forward pass per crop.
    teacher_tta: str = _hp(
        "none",
        Flag(
            "flip: each teacher's softmax is averaged over the crop and its mirror image.",
            choices=TEACHER_TTA_MODES,
        ),
    )
    # Train the teacher first, in the same command: this recipe for this many epochs on
    # labels alone, into OUT-teacher (trainer.run). None: a given teacher or none.
    teacher_epochs: int | None = _hp(
        None,
        Flag(
            "Train the teacher first, in this command: this recipe for N epochs on labels "
            "alone, into OUT-teacher; then distil this run from it. Running the command "
            "again continues an unfinished teacher."
        ),
    )
    width: int | None = _hp(  # resnet, airbench: channels of the first layer / group
        16, Flag("resnet: first-layer channels; airbench: first-group channels.", minimum=1)
    )
    input_size: tuple[int, int] = _hp(  # (height, width) the images are resized to
        (32, 32),
        Flag("Model input side in pixels; images are resized to it.", minimum=8, side=True),
        recorded=False,
    )
    val_split: float = _hp(0.2, Flag("Stratified validation fraction."))  # hold-out fraction
    # Fixed, so export and evaluate recompute exactly the same split.
    split_seed: int = _hp(0, Flag("Seed of the validation split."))
    seed: int = _hp(0, Flag("Random seed for weights, shuffling, augmentation."))
    # int8 calibration set, drawn from the training split
    calibration_images: int = _hp(256, recorded=False)
    max_quant_drop: float = _hp(
        1.0,
        Flag("Accuracy points int8 may lose against float before export fails."),
        recorded=False,
    )

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


def recorded_hparams(hp: HParams) -> dict[str, Any]:
    """The hyperparameters the manifest's training block records, by field name. ``grey``
    only when used: it came after the shipped model, whose manifest must read back alike."""
    return {
        f.name: getattr(hp, f.name)
        for f in dataclasses.fields(hp)
        if f.metadata.get("recorded", True) and not (f.name == "grey" and not hp.grey)
    }


# What each arch's recipe sets; the others keep the class defaults, and CLI flags override
# both. ``seed`` is the original recipe exactly: RMSprop(1e-3), batch 128, 20 epochs, plain
# cross-entropy, no augmentation.
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
# Every arch has a recipe and a network (trainer.models builds one per name).
ARCHS = tuple(ARCH_DEFAULTS)


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
    if hp.optimizer not in OPTIMIZERS:
        problems.append(f"unknown optimizer {hp.optimizer!r} ({', '.join(OPTIMIZERS)})")
    if hp.schedule not in SCHEDULES:
        problems.append(f"unknown schedule {hp.schedule!r} ({', '.join(SCHEDULES)})")
    if min(hp.input_size) < 8:
        problems.append("input size must be at least 8x8")
    if not 0.0 < hp.warmup_start <= 1.0:
        problems.append("warm-up start must be in (0, 1]")
    if hp.translate is not None and hp.translate < 0:
        problems.append("translate must be 0 or more pixels")
    if not 0 <= hp.cutout <= min(hp.input_size):
        problems.append("cutout must be 0 (none) up to the input side in pixels")
    if not 0.0 <= hp.ir <= 1.0:
        problems.append("ir (the share of infrared-like crops) must be in [0, 1]")
    if not 0.0 <= hp.grey <= 1.0:
        problems.append("grey (the share of plain grey crops) must be in [0, 1]")
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
