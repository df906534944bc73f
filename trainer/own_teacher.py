"""``--teacher-epochs N``: train the distillation teacher first, in the same command.

Distilling a network from a trained copy of itself (a "born-again" network, Furlanello
et al. 2018) added 0.84 of a float point to airbench on CIFAR-10 here (docs/benchmarks.md,
"Distillation"), but as two commands it is two things to get right and to resume. This
module runs the first stage: the teacher is the same arch and recipe trained on the same
split for N epochs without distillation, into the sibling folder ``OUT-teacher``; the
caller then distils ``OUT`` from its ``model.keras``.

Running the same command again after an interruption continues an unfinished teacher
from its last epoch checkpoint, and reuses a finished one; once the student has started,
``--resume`` on ``OUT`` continues the student as for any distilled run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer.train import CONFIG_FILENAME, HParams, RunError, train

log = logging.getLogger("trapcount.trainer")

TEACHER_SUFFIX = "-teacher"


@dataclass
class TeacherStage:
    model: Path | None  # the teacher's model.keras; None while it is unfinished
    folder: Path
    student_stop_after: int | None = None  # what is left of --stop-after for the student

    @property
    def student_may_start(self) -> bool:
        return self.model is not None and (
            self.student_stop_after is None or self.student_stop_after > 0
        )


def teacher_folder(out: Path | str) -> Path:
    out = Path(out).expanduser()
    return out.with_name(out.name + TEACHER_SUFFIX)


def teacher_hparams(hp: HParams) -> HParams:
    """The student's recipe for ``hp.teacher_epochs`` epochs, trained on labels alone."""
    if not hp.teacher_epochs:
        raise ValueError("no teacher epochs given")
    return dataclasses.replace(
        hp, epochs=hp.teacher_epochs, teacher=None, teacher_epochs=None, teacher_tta="none"
    )


def teacher_first(
    data: list[str] | tuple[str, ...],
    out: Path | str,
    hp: HParams,
    *,
    stop_after: int | None = None,
    strategy: str = "auto",
    use_cache: bool = True,
) -> TeacherStage:
    """Stage 1 of ``--teacher-epochs``: train (or continue, or reuse) the teacher of the
    run ``out`` (see the module doc). On success ``hp.teacher`` names the teacher."""
    if hp.teacher:
        raise ValueError("give --teacher or --teacher-epochs, not both")
    if (Path(out).expanduser() / CONFIG_FILENAME).exists():
        raise RunError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    folder = teacher_folder(out)
    model_path = folder / "model.keras"
    config_path = folder / CONFIG_FILENAME
    status = None
    if config_path.is_file():
        status = json.loads(config_path.read_text(encoding="utf-8")).get("status")
    if status in ("trained", "finished"):
        if not model_path.is_file():
            raise RunError(
                f"the teacher in {folder} finished training but has no model.keras; "
                "remove that folder and run the command again"
            )
        log.info("stage 1 of 2: teacher %s already trained; distilling from it", model_path)
        hp.teacher = [str(model_path)]
        return TeacherStage(model_path, folder, stop_after)
    if status is not None:
        log.info("stage 1 of 2: continuing the teacher in %s", folder)
        result = train(
            None, folder, resume=True, stop_after=stop_after, strategy=strategy,
            use_cache=use_cache,
        )  # fmt: skip
    else:
        teacher_hp = teacher_hparams(hp)
        log.info(
            "stage 1 of 2: training the teacher for %d epochs into %s", teacher_hp.epochs, folder
        )
        result = train(
            list(data), folder, teacher_hp, stop_after=stop_after, strategy=strategy,
            use_cache=use_cache,
        )  # fmt: skip
    left = None
    if stop_after is not None:
        left = stop_after - (result.epochs_done - result.initial_epoch)
    if not result.finished:
        return TeacherStage(None, folder, left)
    result.model.save(model_path)
    hp.teacher = [str(model_path)]
    log.info("stage 2 of 2: distilling %s from %s", Path(out), model_path)
    return TeacherStage(model_path, folder, left)
