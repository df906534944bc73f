"""``trapcount-train``: real commands on real files; user errors are one line, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.manifest import read_manifest
from edge_agent.vision.classifier import Classifier
from tests.trainer.conftest import CLASSES, QUANT_DROP_ANY, write_class_folders
from trainer.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output


def test_every_command_is_documented():
    result = invoke("--help")
    assert result.exit_code == 0
    for name, command in main.commands.items():
        assert command.help and len(command.help.strip()) > 40, name
        assert name in result.output
        assert invoke(name, "--help").exit_code == 0


def test_train_on_cifar_batches_then_evaluate(cifar_batches: Path, tmp_path: Path):
    out = tmp_path / "cifar-run"
    result = invoke(
        "train", "--data", cifar_batches, "--arch", "tiny", "--epochs", "2", "--out", out,
        "--weight-decay", "1e-4", "--translate", "3", *QUANT_DROP_ANY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    hparams = json.loads((out / "config.json").read_text())["hparams"]
    assert (hparams["weight_decay"], hparams["translate"]) == (1e-4, 3)
    assert result.stdout.startswith(f"exported  {out}\n")
    assert "int8" in result.stdout and "drop" in result.stdout
    assert "confidence as trained" in result.stdout  # 36 validation images: too few
    assert "epoch 2/2" in result.stderr
    assert read_manifest(out).labels == list(CLASSES)
    with Classifier(out):
        pass

    evaluated = invoke("evaluate", out, "--data", cifar_batches, "--out", tmp_path / "eval")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["n"] == 36  # the same validation split training held out
    assert report["int8_accuracy"] == read_manifest(out).accuracy["int8"]
    assert "float" in evaluated.stdout and "recall" in evaluated.stdout
    assert (tmp_path / "eval" / "evaluation-confusion.png").is_file()

    # a smaller fraction of the same split: images the run held out, fewer of them
    smaller = invoke("evaluate", out, "--data", cifar_batches, "--val-split", "0.1")
    assert smaller.exit_code == 0, smaller.output
    assert "validation split (0.1, seed 0), 18 images" in smaller.stdout
    assert_one_line_error(
        invoke("evaluate", out, "--data", cifar_batches, "--val-split", "0.3"),
        "held out 0.2 of the data and trained on the rest",
    )


def test_export_command_and_its_quantization_guard(
    tiny_run: Path, class_folders: Path, class_tar: Path, tmp_path: Path
):
    out = tmp_path / "exported"
    data = ["--data", class_folders, "--data", class_tar]
    result = invoke("export", tiny_run / "model.keras", *data, "--out", out)
    assert result.exit_code == 0, result.output
    assert read_manifest(out).accuracy == read_manifest(tiny_run).accuracy
    # exporting a finished run again keeps its training record and draws its curve
    training = dict(read_manifest(out).training)
    assert training.pop("exported_from") == str((tiny_run / "model.keras").resolve())
    assert training == read_manifest(tiny_run).training
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2
    assert (out / "curve.png").is_file()

    rejected = tmp_path / "rejected"
    forced = invoke(
        "export", tiny_run / "model.keras", *data, "--out", rejected, "--max-quant-drop", "-100"
    )
    assert_one_line_error(forced, "points below float")
    assert not (rejected / "model.json").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/r"], "data not found"),
        (["train", "--data", "{empty}", "--arch", "tiny", "--out", "{tmp}/r"], "no readable"),
        (["train", "--data", "{one}", "--arch", "tiny", "--out", "{tmp}/r"], "at least 2"),
        (["train", "--data", "{one}", "--arch", "vgg", "--out", "{tmp}/r"], "'vgg' is not"),
        (["train", "--arch", "tiny", "--out", "{tmp}/r"], "give at least one --data"),
        (["train", "--data", "{one}", "--out", "{tmp}/file/run"], "cannot write"),
        (["train", "--out", "{tmp}/nothing", "--resume"], "nothing to resume"),
        (["train", "--data", "{one}", "--epochs", "0", "--out", "{tmp}/r"], "--epochs"),
        (["train", "--data", "{one}", "--val-split", "1.5", "--out", "{tmp}/r"], "validation"),
        (
            ["train", "--data", "{one}", "--teacher", "{tmp}/no.keras", "--out", "{tmp}/r"],
            "teacher",
        ),
        (["train", "--data", "{one}", "--teacher-weight", "0", "--out", "{tmp}/r"], "weight"),
        (["export", "{tmp}/missing.keras", "--data", "{one}", "--out", "{tmp}/e"], "not found"),
        (["evaluate", "{tmp}/nomodel", "--data", "{one}"], "not found"),
        (["evaluate", "{empty}", "--data", "{one}"], "model file not found"),
        (["frobnicate"], "No such command"),
    ],
    ids=[
        "missing-path",
        "no-images",
        "one-class",
        "unknown-arch",
        "no-data",
        "unwritable-out",
        "resume-nothing",
        "zero-epochs",
        "bad-val-split",
        "missing-teacher",
        "zero-teacher-weight",
        "export-missing-model",
        "evaluate-missing-dir",
        "evaluate-no-model",
        "unknown-command",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], fragment: str):
    empty = tmp_path / "empty"
    empty.mkdir()
    one = write_class_folders(tmp_path / "one", 3, seed=0, classes=("fox",), corrupt=False)
    (tmp_path / "file").write_text("a file, not a folder")
    filled = [a.format(tmp=tmp_path, empty=empty, one=one) for a in args]
    assert_one_line_error(invoke(*filled), fragment)


def test_teacher_epochs_then_the_student_resumes(class_folders: Path, tmp_path: Path):
    out = tmp_path / "student"
    common = ("--data", class_folders, "--arch", "tiny", "--epochs", "2", "--out", out)
    first = invoke("train", *common, *QUANT_DROP_ANY, "--teacher-epochs", "2", "--stop-after", "3")
    assert first.exit_code == 0, first.output
    assert "stage 1 of 2: training the teacher for 2 epochs" in first.stderr
    assert "stopped after epoch 1 of 2" in first.stdout  # two teacher epochs, one student
    assert (tmp_path / "student-teacher" / "model.keras").is_file()

    resumed = invoke("train", "--out", out, "--resume", *QUANT_DROP_ANY)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.startswith(f"exported  {out}\n")
    assert read_manifest(out).training["teacher_epochs"] == 2

    assert_one_line_error(
        invoke("train", *common[:-1], tmp_path / "both", "--teacher-epochs", "1",
               "--teacher", out / "model.keras"),
        "give --teacher or --teacher-epochs, not both",
    )  # fmt: skip


def saved_model(path: Path, arch: str = "tiny") -> Path:
    """A real .keras file of ``arch`` with a head for CLASSES (untrained: only its network
    matters here)."""
    from trainer.models import make_model

    make_model(arch, (32, 32, 3), len(CLASSES)).save(path)
    return path


def test_init_from_with_an_arch_naming_another_network_is_refused(
    class_folders: Path, tmp_path: Path
):
    """With --init-from the network comes from the file; --arch picks only the recipe, so
    one naming another network is refused rather than silently ignored."""
    tiny = saved_model(tmp_path / "tiny.keras")
    out = tmp_path / "run"
    common = ("train", "--data", class_folders, "--init-from", tiny, "--out", out)
    assert_one_line_error(
        invoke(*common, "--arch", "resnet"),
        f"--arch resnet does not match the tiny network in {tiny}: with --init-from the "
        "network comes from the file and --arch only picks the recipe; give --arch tiny for "
        "its own recipe, or leave --arch out for resnet's",
    )
    assert not out.exists()
    # The same arch is its recipe; the run records the network it fine-tuned.
    result = invoke(*common, "--arch", "tiny", "--epochs", "1", "--no-export")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["network"], config["hparams"]["arch"]) == ("tiny", "tiny")


def test_a_network_that_none_of_ours_made_is_recorded_as_unknown(
    class_folders: Path, tmp_path: Path
):
    """Not as the recipe's arch: the run's config (and so its manifest) says what it ran."""
    import keras

    foreign = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ],
        name="someone_elses_net",
    )
    foreign.save(tmp_path / "foreign.keras")
    out = tmp_path / "run"
    result = invoke(
        "train", "--data", class_folders, "--init-from", tmp_path / "foreign.keras",
        "--arch", "tiny", "--epochs", "1", "--no-export", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["network"], config["hparams"]["arch"]) == ("unknown", "tiny")


@pytest.fixture
def damaged(tmp_path: Path) -> dict[str, Path]:
    """Files named .keras that are not Keras 3 archives: random bytes, and a real model's
    archive cut in half (a copy that stopped)."""
    random_bytes = tmp_path / "random.keras"
    random_bytes.write_bytes(bytes(range(256)) * 64)
    whole = saved_model(tmp_path / "whole.keras").read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(whole[: len(whole) // 2])
    return {"random": random_bytes, "truncated": truncated}


@pytest.mark.parametrize("kind", ["random", "truncated"])
@pytest.mark.parametrize("command", ["init-from", "teacher", "export", "evaluate"])
def test_a_damaged_keras_file_is_reported_as_what_it_is(
    damaged, kind: str, command: str, class_folders: Path, tiny_run: Path, tmp_path: Path
):
    bad = damaged[kind]
    out = tmp_path / "out"
    if command == "init-from":
        args = ["train", "--data", class_folders, "--init-from", bad, "--arch", "tiny"]
    elif command == "teacher":
        args = ["train", "--data", class_folders, "--teacher", bad, "--arch", "tiny"]
    elif command == "export":
        args = ["export", bad, "--data", class_folders]
    else:  # a model folder whose float model.keras is damaged
        folder = tmp_path / "model"
        shutil.copytree(tiny_run, folder)
        shutil.copy(bad, folder / "model.keras")
        bad = folder / "model.keras"
        args = ["evaluate", folder, "--data", class_folders]
    result = invoke(*args, "--out", out)
    assert_one_line_error(
        result, f"{bad} is not a Keras 3 .keras archive (damaged or another format)"
    )
    assert "File not found" not in result.output


def test_a_grey_companion_trained_taught_paired_and_measured(
    tiny_run: Path, class_folders: Path, class_tar: Path, tmp_path: Path
):
    """The recipe of models/default/README.md in small: a network trained on infrared-like
    crops alone, taught by the colour model, paired with it; the pair measured as the trap
    runs it (grey images to the companion, the rest to the colour network)."""
    grey_run = tmp_path / "grey"
    data = ["--data", class_folders, "--data", class_tar]
    trained = invoke(
        "train", *data, "--arch", "tiny", "--epochs", "2", "--out", grey_run, "--ir", "1.0",
        "--teacher", (tiny_run / "model.keras").resolve(), *QUANT_DROP_ANY,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    paired = tmp_path / "paired"
    result = invoke("pair", tiny_run, "--grey", grey_run, "--out", paired)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(paired)
    assert f"paired    {paired}: model {manifest.version}" in result.stdout
    assert manifest.grey_companion.sha256 == read_manifest(grey_run).sha256
    assert manifest.grey_companion.training["ir"] == 1.0
    # Every crop it trained on was grey: its int8 ranges were calibrated on grey images.
    assert json.loads((grey_run / "metrics.json").read_text())["calibrated_on"] == "grey"
    assert json.loads((tiny_run / "metrics.json").read_text())["calibrated_on"] == "colour"

    def grey_figures(model: Path) -> dict:
        out = tmp_path / f"eval-{model.name}"
        evaluated = invoke("evaluate", model, *data, "--grey", "--out", out)
        assert evaluated.exit_code == 0, evaluated.output
        return json.loads((out / "evaluation.json").read_text())

    pair, grey = grey_figures(paired), grey_figures(grey_run)
    assert manifest.accuracy["measured"] == "colour network alone"
    assert pair["grey"]["int8_accuracy"] == grey["grey"]["int8_accuracy"]
    assert "float_accuracy" not in pair and pair["grey_companion"] == manifest.grey.get("sha256")

    # Measured while pairing: the manifest records the pair's own figures.
    measured = invoke("pair", tiny_run, "--grey", grey_run, "--out", tmp_path / "m", *data)
    assert measured.exit_code == 0, measured.output
    accuracy = read_manifest(tmp_path / "m").accuracy
    assert accuracy["int8"] == pair["int8_accuracy"]
    assert accuracy["int8_grey"] == pair["grey"]["int8_accuracy"]
    assert accuracy["measured"].startswith("the pair, on validation split")
    assert f"{100 * accuracy['int8_grey']:.2f}% grey" in measured.stdout

    assert_one_line_error(invoke("pair", tiny_run, "--grey", tmp_path / "none"), "not a model")
