"""``trapcount-train``: labelled images -> Keras model -> int8 TFLite model with a manifest.

A thin click layer over trainer.run (train), trainer.export, trainer.evaluate and
trainer.compare. The hyperparameter options of ``train`` are generated from the recipe
(trainer.options). Errors the user can fix (a missing path, one class only, an unwritable
folder, a model that loses accuracy in quantization) end as one line on stderr and exit
code 2, never a traceback.

Only click and the recipe are imported at start: ``--help`` must not load Keras, so each
command imports what it runs when it runs.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import click

from edge_agent.manifest import GREY_MAX_SPREAD
from trainer.options import hparam_options, hparam_overrides
from trainer.recipe import ARCHS, TTA_MODES, hparams_for

# Before TensorFlow is imported anywhere: keep its C++ start-up chatter out of the logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2


class TrainerCliError(click.ClickException):
    exit_code = EXIT_BAD_INPUT


class OneLineErrorGroup(click.Group):
    """Every click error (usage errors included) as one ``Error: ...`` line, exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {message}{hint}", err=True)
            code = EXIT_BAD_INPUT if isinstance(exc, click.UsageError) else exc.exit_code
            sys.exit(code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted; a training run continues with --resume.", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported when an error is raised: trainer.data and trainer.export load OpenCV and more.
    from edge_agent.manifest import ModelContractError
    from trainer.data import DataError
    from trainer.export import ExportError
    from trainer.recipe import UnknownArchError
    from trainer.run_folder import RunError

    return (DataError, ExportError, ModelContractError, RunError, UnknownArchError, ValueError)


def _run(action):
    """Call ``action`` and turn the errors a user can fix into one-line CLI errors."""
    try:
        return action()
    except _user_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise TrainerCliError(message) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise TrainerCliError(f"{exc.strerror or exc}{where}") from None


def _setup_logging(quiet: bool) -> None:
    """Our log lines, and TensorFlow's warnings, to this invocation's stderr. TensorFlow's
    logger otherwise keeps the stderr of the first call that logged (an earlier, closed
    stream when commands run in one process, as tests do) and fails on its next warning."""
    for name, level in (
        ("trapcount.trainer", logging.WARNING if quiet else logging.INFO),
        ("tensorflow", logging.WARNING),
    ):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


data_option = click.option(
    "--data",
    "data",
    multiple=True,
    metavar="PATH",
    help="Class folders, a .tar/.tar.gz of them, CIFAR-10 python batches "
    "(cifar-10-python.tar.gz or cifar-10-batches-py/), a COCO Camera Traps .json (the "
    "--image-root ... --data-repeat options), or 'cifar10' (keras.datasets, needs network). "
    "Repeat to combine; labels are the sorted union of class names.",
)
# trainer.cct.SPLIT_BY, spelled out so that --help does not import OpenCV (a test checks).
SPLIT_BY = ("location", "seq", "image")
_COCO_OPTIONS = (
    click.option(
        "--image-root",
        type=click.Path(file_okay=False, path_type=Path),
        help="COCO Camera Traps --data: the folder its images' file_name is relative to "
        "[default: the .json's folder].",
    ),
    click.option(
        "--boxes",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="MD.json",
        help="MegaDetector batch output (format 1.3+) for the COCO images with image-level "
        "labels only: their animal (person, vehicle) boxes become the crops. Repeatable.",
    ),
    click.option(
        "--boxes-threshold",
        type=click.FloatRange(0.0, 1.0),
        help="Lowest MegaDetector confidence taken as a box; without one the whole frame is "
        "the crop [default: 0.2].",
    ),
    click.option(
        "--label-map",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="CSV",
        help="'source category,label' rows mapping COCO categories to labels; an empty label "
        "or 'drop' drops one, a '*' row maps the rest [default: the category names].",
    ),
    click.option(
        "--empty-as",
        metavar="LABEL",
        help="Learn COCO 'empty' frames as LABEL: random crops the size of motion false "
        "positives [default: skip them].",
    ),
    click.option(
        "--split-by",
        type=click.Choice(SPLIT_BY),
        help="COCO crops go to the validation split by whole location (else sequence, else "
        "frame), sequence (else frame) or frame; other sources per class [default: location].",
    ),
    click.option(
        "--data-repeat",
        type=click.IntRange(min=1),
        metavar="N",
        help="Training sees each COCO crop N times an epoch: a small field set next to CIFAR "
        "[default: 1].",
    ),
)
_COCO_NAMES = ("image_root", "boxes", "boxes_threshold", "label_map", "empty_as", "split_by")


def coco_options(command):
    """Add the COCO Camera Traps options to a command with ``--data``; the command gets its
    ``data`` with each .json and these options as one spec (trainer.cct.coco_specs)."""

    @functools.wraps(command)
    def with_specs(*args, data=(), **kwargs):
        options = {name: kwargs.pop(name) for name in _COCO_NAMES}
        options["repeat"] = kwargs.pop("data_repeat")
        if any(value not in (None, ()) for value in options.values()):
            _setup_logging(kwargs.get("quiet", False))
            from trainer.cct import coco_specs  # OpenCV and numpy: not for --help

            data = tuple(_run(lambda: coco_specs(data, **options)))
        return command(*args, data=data, **kwargs)

    for option in reversed(_COCO_OPTIONS):
        with_specs = option(with_specs)
    return with_specs


cache_option = click.option(
    "--no-cache",
    is_flag=True,
    help="Decode archives again instead of using ~/.cache/trapcount (TRAPCOUNT_CACHE_DIR).",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trapcount", prog_name="trapcount-train")
def main() -> None:
    """Train, export and evaluate trapcount classifiers.

    A run folder holds model.keras, model.tflite (full-integer, uint8 raw RGB input),
    model.json (the contract the edge agent checks), metrics.json, config.json and
    confusion.png. Copy model.tflite + model.json to the trap.
    """


@main.command()
@data_option
@coco_options
@click.option(
    "--arch",
    type=click.Choice(ARCHS),
    default=None,
    help="seed: the original Keras CIFAR-10 recipe; resnet: BatchNorm ResNet-9; airbench: "
    "airbench94's whitened net and recipe (the shipped model; for large datasets); tiny: "
    "seconds, for tests. With --init-from the network is the file's and --arch picks only "
    "the recipe: it must name that network, or be left out. [default: resnet, also when "
    "fine-tuning with --init-from]",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default runs/ARCH). Must not hold another run unless --resume.",
)
@hparam_options
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    help="Fine-tune this .keras model; its head is replaced when the label set changed.",
)
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option(
    "--stop-after",
    type=click.IntRange(min=1),
    help="Stop after this many epochs in this invocation (continue later with --resume).",
)
@click.option(
    "--no-export", is_flag=True, help="Only train; export later with 'trapcount-train export'."
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "mirrored", "multiworker"]),
    default="auto",
    show_default=True,
    help="auto: MirroredStrategy when more than one GPU is visible.",
)
@cache_option
@quiet_option
def train(
    data, arch, out, init_from, resume, stop_after, no_export, strategy, no_cache, quiet,
    **hparam_values,
) -> None:  # fmt: skip
    """Train a classifier on labelled images, then export it into the run folder.

    \b
    trapcount-train train --data ../shared/data/cifar10-train-jpeg.tar.gz --arch seed \\
        --out runs/seed
    trapcount-train train --data crops/ --init-from models/default/model.keras --out runs/v2
    trapcount-train train --out runs/seed --resume
    """
    _setup_logging(quiet)
    if not resume and not data:
        raise TrainerCliError("give at least one --data (or --resume an existing run)")
    # The orchestration imports Keras (seconds): only now that a run is asked for.
    from trainer.run import recipe_arch, run_training

    arch = _run(lambda: recipe_arch(arch, init_from, resume=resume))
    out = out or Path("runs") / arch
    if resume and data:
        logging.getLogger("trapcount.trainer").warning(
            "--resume continues with the data and settings saved in %s; ignoring --data", out
        )

    def action():
        hp = None if resume else hparams_for(arch, **hparam_overrides(hparam_values))
        return run_training(
            list(data),
            out,
            hp,
            resume=resume,
            init_from=init_from,
            stop_after=stop_after,
            strategy=strategy,
            use_cache=not no_cache,
            export=not no_export,
            max_quant_drop=hparam_values["max_quant_drop"],
        )

    _report_run(_run(action), out)


def _report_run(outcome, out: Path) -> None:
    """What a ``train`` invocation did, and how to go on when it stopped early."""
    stage, result = outcome.teacher, outcome.trained
    if result is None:
        click.echo(
            f"stopped while training the teacher in {stage.folder}"
            if stage.model is None
            else f"trained the teacher {stage.model}; the student has not started"
        )
        click.echo("continue with the same command")
    elif not result.finished:
        click.echo(
            f"stopped after epoch {result.epochs_done} of {result.hp.epochs}; "
            f"continue with: trapcount-train train --out {out} --resume"
        )
    elif outcome.exported is None:
        click.echo(
            f"trained {out / 'model.keras'}; export with: trapcount-train export "
            f"{out / 'model.keras'} --data ... --out {out}"
        )
    else:
        _print_summary(outcome.exported.out, outcome.exported.metrics)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@data_option
@coco_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Export folder.")
@click.option(
    "--max-quant-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Accuracy points int8 may lose against float before export fails.",
)
@click.option("--val-split", type=float, help="Validation fraction (default: from the run).")
@click.option("--split-seed", type=int, help="Validation split seed (default: from the run).")
@click.option(
    "--tta",
    type=click.Choice(TTA_MODES),
    help="Test-time augmentation baked into the .tflite: none, flip (2 views) or flip-shift "
    "(6 views) (default: from the run, else none).",
)
@cache_option
@quiet_option
def export(model, data, out, max_quant_drop, val_split, split_seed, tta, no_cache, quiet) -> None:
    """Export MODEL (.keras) to int8 TFLite + manifest, measured on --data's validation split.

    The split and labels come from the config.json beside MODEL when there is one. Fails
    (exit 2) when int8 accuracy is more than --max-quant-drop points below float.
    """
    _setup_logging(quiet)
    if not data:
        raise TrainerCliError("give at least one --data to calibrate and measure on")

    def action():
        from trainer.export import export_keras_file  # Keras: not for --help

        exported = export_keras_file(
            model,
            list(data),
            out,
            max_quant_drop=max_quant_drop,
            val_split=val_split,
            split_seed=split_seed,
            tta=tta,
            use_cache=not no_cache,
        )
        _print_summary(exported.out, exported.metrics)

    _run(action)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@data_option
@coco_options
@click.option(
    "--split",
    type=click.Choice(["val", "all"]),
    default="val",
    show_default=True,
    help="val: the validation split recorded in the manifest (same data as training); "
    "all: every image (an independent test set).",
)
@click.option(
    "--val-split",
    type=float,
    help="With --split val: measure on this smaller fraction of the same seeded split, to "
    "compare models that held out different fractions on the same images.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Also write evaluation.json and evaluation-confusion.png into this folder.",
)
@click.option(
    "--grey",
    is_flag=True,
    help="Also measure on the same images turned grey (ITU-R BT.601 luma in all three "
    "channels, as an infrared night frame) and print the gap to colour in points.",
)
@click.option("--threads", type=click.IntRange(min=1), help="Interpreter threads.")
@cache_option
@quiet_option
def evaluate(model_dir, data, split, val_split, out, grey, threads, no_cache, quiet) -> None:
    """Accuracy of MODEL_DIR (model.tflite + model.json) on --data, int8 through the edge
    agent's classifier, float too when model.keras is there; with --grey also on the same
    images turned grey, the infrared gap."""
    _setup_logging(quiet)
    if not data:
        raise TrainerCliError("give at least one --data to evaluate on")

    def action():
        # The interpreter, and Keras for a float model: not for --help.
        from trainer.evaluate import evaluate_model_dir, plot_confusion
        from trainer.run_folder import write_json

        result = evaluate_model_dir(
            model_dir,
            list(data),
            split=split,
            use_cache=not no_cache,
            num_threads=threads,
            val_split=val_split,
            grey=grey,
        )
        scores = result.pop("_scores")
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            write_json(Path(out) / "evaluation.json", result)
            plot_confusion(
                scores.confusion,
                scores.labels,
                Path(out) / "evaluation-confusion.png",
                f"int8 on {result['split']}, n={result['n']}: {100 * scores.accuracy:.1f}%",
            )
        _print_evaluation(result, scores.labels)

    _run(action)


def _print_evaluation(result: dict, labels: list[str]) -> None:
    click.echo(f"model     {result['model']} ({result['sha256'][:12]})")
    click.echo(f"data      {result['split']}, {result['n']} images")
    if "float_accuracy" in result:
        click.echo(f"float     {100 * result['float_accuracy']:.2f}%")
    click.echo(f"int8      {100 * result['int8_accuracy']:.2f}%")
    grey = result.get("grey")
    if grey is not None:
        _print_grey(grey)
    width = max(len(label) for label in labels)
    grey_recall = grey["per_class_recall_int8"] if grey is not None else {}
    for label, recall in result["per_class_recall_int8"].items():
        shown = _percent(recall)
        if label in grey_recall:
            shown += f"  grey {_percent(grey_recall[label])}"
        click.echo(f"  {label:<{width}}  recall {shown}")


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _print_grey(grey: dict) -> None:
    """The accuracy on the images turned grey and its gap to colour, float and int8."""
    click.echo(f"grey      {grey['look']}")
    for kind in ("float", "int8"):
        if f"{kind}_accuracy" in grey:
            click.echo(
                f"{kind:<5} grey {100 * grey[f'{kind}_accuracy']:.2f}% "
                f"(gap {grey[f'{kind}_gap_points']:.2f} points)"
            )


class WorseModelError(click.ClickException):
    exit_code = 1


@main.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@data_option
@coco_options
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Points of shared-label accuracy NEW may lose before it counts as worse.",
)
@click.option("--force", is_flag=True, help="Exit 0 even when NEW is worse.")
@click.option("--threads", type=click.IntRange(min=1), help="Interpreter threads.")
@cache_option
@quiet_option
def compare(old, new, data, tolerance, force, threads, no_cache, quiet) -> None:
    """Per-class int8 accuracy of model folders OLD and NEW on every image of --data (a
    held-out validation set); exit 1 when NEW is worse on the labels both know, unless
    --force."""
    _setup_logging(quiet)
    if not data:
        raise TrainerCliError("give at least one --data to compare on")

    def action():
        from trainer.compare import compare_models  # the interpreter: not for --help

        return compare_models(
            old,
            new,
            list(data),
            tolerance=tolerance,
            use_cache=not no_cache,
            num_threads=threads,
        )

    result = _run(action)
    click.echo(f"old  {old}")
    click.echo(f"new  {new}")
    click.echo(result.table())
    if result.worse:
        message = (
            f"NEW is worse on the shared labels ({100 * result.new_shared:.1f}% < "
            f"{100 * result.old_shared:.1f}%)"
        )
        if not force:
            raise WorseModelError(message + "; --force to accept it anyway")
        click.echo(f"{message}; accepted with --force")
    else:
        click.echo("NEW is not worse on the shared labels")


@main.command()
@click.argument("colour", type=click.Path(path_type=Path))
@click.option(
    "--grey",
    "grey_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Model folder of the network for grey crops (trained on grey: --ir P --grey 1).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder of the paired model [default: COLOUR itself, the companion added in place].",
)
@click.option(
    "--max-spread",
    type=click.FloatRange(min=0, min_open=True, max=255),
    default=GREY_MAX_SPREAD,
    show_default=True,
    help="Crops whose mean channel difference (grey levels) is below this go to --grey.",
)
@data_option
@coco_options
@cache_option
@quiet_option
def pair(colour, grey_dir, out, max_spread, data, no_cache, quiet) -> None:
    """Give the model in COLOUR a grey companion: the network of --grey classifies the
    crops with no colour in them (infrared night frames), COLOUR's network the rest. With
    --data, the pair is measured on COLOUR's validation split, in colour and grey, and its
    manifest records those figures; without, the colour network's."""
    _setup_logging(quiet)
    target = out or colour

    def action():
        from trainer.pair import pair_models, record_pair_accuracy

        manifest = pair_models(colour, grey_dir, target, max_spread=max_spread)
        if data:
            from trainer.evaluate import evaluate_model_dir  # the interpreter: not for --help

            evaluation = evaluate_model_dir(target, list(data), use_cache=not no_cache, grey=True)
            manifest = record_pair_accuracy(target, evaluation)
        return manifest

    manifest = _run(action)
    companion = manifest.grey_companion
    click.echo(f"paired    {target}: model {manifest.version}")
    click.echo(f"colour    {manifest.sha256[:12]}")
    click.echo(f"grey      {companion.sha256[:12]} (crops of spread under {max_spread:g})")
    if data:
        accuracy = manifest.accuracy
        click.echo(
            f"int8      {100 * accuracy['int8']:.2f}% colour, {100 * accuracy['int8_grey']:.2f}% "
            f"grey (gap {100 * (accuracy['int8'] - accuracy['int8_grey']):.2f} points) on "
            f"{accuracy['n_val']} images"
        )


def _print_summary(out: Path, metrics: dict) -> None:
    click.echo(f"exported  {out}")
    click.echo(f"float     {100 * metrics['float_accuracy']:.2f}% on {metrics['n_val']} val images")
    click.echo(
        f"int8      {100 * metrics['int8_accuracy']:.2f}% "
        f"(drop {metrics['quant_drop_points']:.2f} points, allowed {metrics['max_quant_drop']:g})"
    )
    if "grey" in metrics:
        _print_grey(metrics["grey"])
    click.echo(f"tflite    {metrics['tflite_bytes']:,} bytes, sha256 {metrics['sha256'][:12]}")
    confidence = metrics.get("confidence", {})
    if confidence.get("method") == "temperature":
        click.echo(
            f"confidence temperature {confidence['temperature']:.3g}: calibration error "
            f"{100 * confidence['ece_float_before']:.1f}% -> {100 * confidence['ece_int8']:.1f}% "
            "(int8)"
        )
    else:
        click.echo("confidence as trained (validation split too small to calibrate)")


if __name__ == "__main__":
    main()
