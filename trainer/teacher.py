"""The distillation teacher (``--teacher``, ``--teacher-epochs``).

A teacher is a trained classifier whose softmax on each augmented crop becomes part of the
student's training target (trainer.data.make_tf_dataset). Here: loading one or several as
the teacher, checked against the run's labels and input size; the digests that tie a
student to the files that taught it; and, for ``--teacher-epochs``, where the teacher a
run trains for itself lives and with what recipe (trainer.run trains it first).

Distilling a network from a trained copy of itself (a "born-again" network, Furlanello
et al. 2018) added 0.84 of a float point to airbench on CIFAR-10 here (docs/benchmarks.md,
"Distillation").
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras

from edge_agent.manifest import sha256_file
from trainer.data import DataError
from trainer.recipe import HParams
from trainer.run_folder import existing_file, labels_beside, load_keras_model

log = logging.getLogger("trapcount.trainer")

TEACHER_SUFFIX = "-teacher"


def teacher_folder(out: Path | str) -> Path:
    """Where ``--teacher-epochs`` trains the teacher of the run ``out``: ``OUT-teacher``."""
    out = Path(out).expanduser()
    return out.with_name(out.name + TEACHER_SUFFIX)


def teacher_hparams(hp: HParams) -> HParams:
    """The student's recipe for ``hp.teacher_epochs`` epochs, trained on labels alone."""
    if not hp.teacher_epochs:
        raise ValueError("no teacher epochs given")
    return dataclasses.replace(
        hp, epochs=hp.teacher_epochs, teacher=None, teacher_epochs=None, teacher_tta="none"
    )


def teacher_digests(paths: list[str]) -> list[str]:
    """The SHA-256 of each teacher file. Teachers are named by path, and a path such as
    models/default/model.keras changes when a new model is shipped: the digests say which
    file taught a run."""
    return [sha256_file(path) for path in paths]


def check_teachers_unchanged(paths: list[str], recorded: list[str]) -> None:
    """A resumed student must go on learning from the teachers it started with."""
    for path, digest in zip(paths, recorded, strict=True):
        if sha256_file(existing_file(path, "teacher model")) != digest:
            raise DataError(
                f"teacher {path} changed since the run started (sha256 was {digest[:12]}...); "
                "put the original back to resume"
            )


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
