"""A training run from start to end: the teacher (``--teacher-epochs``), the fit, the export.

The one orchestration in trainer/: ``trapcount-train train`` (trainer.cli) and the Python
API (:func:`train_and_export`) both go through :func:`run_training`::

    from trainer.run import train_and_export
    model_dir = train_and_export(data=["frames/"], out="runs/tiny", arch="tiny", epochs=2)
    # model_dir holds model.keras, model.tflite, model.json, metrics.json, config.json,
    # confusion.png, curve.png

``--teacher-epochs N`` makes it two stages: the teacher, this run's recipe for N epochs on
labels alone, is trained into the sibling folder ``OUT-teacher`` (trainer.teacher); then
``OUT`` is distilled from its model.keras. Running the same command again after an
interruption continues an unfinished teacher from its last checkpoint and reuses a
finished one; once the student has started, ``--resume`` on ``OUT`` continues the student
as for any distilled run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.export import (
    ExportResult,
    QuantizationDropError,
    export_model,
    plot_run_curve,
    trained_grey_only,
)
from trainer.fit import TrainResult, train
from trainer.recipe import DEFAULT_ARCH, HParams, hparams_for
from trainer.run_folder import (
    CONFIG_FILENAME,
    CURVE_FILENAME,
    KERAS_FILENAME,
    RunError,
    read_config,
    saved_network_arch,
    training_summary,
    write_json,
)
from trainer.teacher import teacher_folder, teacher_hparams

log = logging.getLogger("trapcount.trainer")


@dataclass
class TeacherStage:
    """Where stage 1 of ``--teacher-epochs`` left off."""

    model: Path | None  # the teacher's model.keras; None while it is unfinished
    folder: Path
    student_stop_after: int | None = None  # what is left of --stop-after for the student

    @property
    def student_may_start(self) -> bool:
        return self.model is not None and (
            self.student_stop_after is None or self.student_stop_after > 0
        )


@dataclass
class RunOutcome:
    """Where a run ended: in the teacher stage, after some epochs, trained, or exported."""

    folder: Path  # the folder it wrote last: the run's, or its teacher's
    teacher: TeacherStage | None = None  # with --teacher-epochs
    trained: TrainResult | None = None  # None: it stopped in the teacher stage
    exported: ExportResult | None = None  # None: stopped early, or not asked to export


def run_training(
    data: list[str | Path] | tuple[str | Path, ...] | None,
    out: Path | str,
    hp: HParams | None,
    *,
    resume: bool = False,
    init_from: Path | str | None = None,
    stop_after: int | None = None,
    strategy: str = "auto",
    use_cache: bool = True,
    export: bool = True,
    max_quant_drop: float | None = None,
) -> RunOutcome:
    """Train (the teacher first with ``hp.teacher_epochs``) and export into ``out``.

    ``hp`` is None with ``resume`` (the run's config.json has it). ``max_quant_drop``, when
    given, is the export's limit also for a resumed run. ``export=False`` saves the trained
    model as ``model.keras`` instead. Raises :class:`trainer.export.QuantizationDropError`
    when int8 loses more than the limit (the run folder keeps metrics, no deployable model).
    """
    specs = [d if isinstance(d, dict) else str(d) for d in data] if data else None  # dict: COCO
    stage = None
    if hp is not None and hp.teacher_epochs:
        stage = teacher_first(
            specs or [], out, hp, stop_after=stop_after, strategy=strategy, use_cache=use_cache
        )
        if not stage.student_may_start:
            return RunOutcome(stage.folder, stage)
        stop_after = stage.student_stop_after
    result = train(
        specs,
        out,
        hp,
        resume=resume,
        init_from=init_from,
        stop_after=stop_after,
        strategy=strategy,
        use_cache=use_cache,
    )
    if not result.finished:
        return RunOutcome(result.out, stage, result)
    if max_quant_drop is not None:
        result.hp.max_quant_drop = max_quant_drop
    if not export:
        result.model.save(result.out / KERAS_FILENAME)
        return RunOutcome(result.out, stage, result)
    return RunOutcome(result.out, stage, result, export_run(result))


def train_and_export(
    data: list[str | Path] | tuple[str | Path, ...] | None,
    out: Path | str,
    arch: str = DEFAULT_ARCH,
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

    Other keyword arguments are :class:`~trainer.recipe.HParams` fields (``val_split``,
    ``augment``, ...). With ``stop_after`` the run may stop before its last epoch; then
    nothing is exported and ``out`` holds a checkpoint for ``resume=True``. With
    ``teacher_epochs`` the teacher is trained first into ``OUT-teacher``; if it stops
    there, that folder is returned and calling again with the same arguments continues it.
    Raises ``trainer.export.QuantizationDropError`` when int8 loses more than
    ``max_quant_drop`` points (the run folder then keeps metrics but no deployable model).
    """
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
    outcome = run_training(
        data,
        out,
        hp,
        resume=resume,
        init_from=init_from,
        stop_after=stop_after,
        use_cache=use_cache,
        max_quant_drop=max_quant_drop,
    )
    return outcome.folder


def recipe_arch(arch: str | None, init_from: Path | None, *, resume: bool) -> str:
    """The arch whose recipe a new run trains with: ``arch``, else the default.

    With ``init_from`` the network is the saved one and ``arch`` only picks the recipe, so
    an ``arch`` naming another network would be silently ignored where it matters most: it
    is refused. (A file that is not one of our .keras archives is left to the loader to
    report.) Without ``arch`` a fine-tune uses resnet's recipe (batch 256, peak lr 0.2, 40
    epochs), which suits the few hundred crops a site collects; airbench's (batch 1024,
    lr 1.5) would give them one step an epoch.
    """
    network = saved_network_arch(init_from) if init_from and not resume else None
    if arch is not None:
        if network is not None and network != arch:
            choices = f"give --arch {network} for its own recipe"
            if network != DEFAULT_ARCH:
                choices += f", or leave --arch out for {DEFAULT_ARCH}'s"
            raise RunError(
                f"--arch {arch} does not match the {network} network in {init_from}: with "
                "--init-from the network comes from the file and --arch only picks the "
                "recipe; " + choices
            )
        return arch
    if network:
        log.info(
            "fine-tuning a %s network with the %s recipe; --arch %s uses its own",
            network,
            DEFAULT_ARCH,
            network,
        )
    return DEFAULT_ARCH


# -- the stages ---------------------------------------------------------------------------------


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
    model_path = folder / KERAS_FILENAME
    status = read_config(folder).get("status") if (folder / CONFIG_FILENAME).is_file() else None
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


def export_run(result: TrainResult) -> ExportResult:
    """Export a finished fit into its run folder; config.json records the outcome
    (``finished`` or ``rejected``) and the hyperparameters the export used."""
    hp = result.hp
    network = result.config.get("network", hp.arch)
    try:
        exported = export_model(
            result.model,
            train=result.split.train,
            val=result.split.val,
            out=result.out,
            arch=network,
            training=training_summary(result.config, hp, result.epochs_done),
            max_quant_drop=hp.max_quant_drop,
            calibration_count=hp.calibration_images,
            seed=hp.seed,
            extra_metrics={"history": result.history},
            tta=hp.tta,
            grey_only=trained_grey_only(hp.to_dict()),
        )
        plot_run_curve(
            result.history,
            network,
            exported.metrics["int8_accuracy"],
            result.out / CURVE_FILENAME,
        )
        result.config["status"] = "finished"
        return exported
    except QuantizationDropError:
        result.config["status"] = "rejected"
        raise
    finally:
        result.config["hparams"] = hp.to_dict()
        write_json(result.out / CONFIG_FILENAME, result.config)
