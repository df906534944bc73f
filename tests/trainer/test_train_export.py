"""Train a tiny model, export it, and load it the way the Pi does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_agent.manifest import ModelContractError, read_manifest, sha256_file
from edge_agent.vision.classifier import Classifier
from tests.trainer.conftest import CLASSES, synthetic_image, write_class_folders
from trainer.data import DataError
from trainer.export import QuantizationDropError
from trainer.run import train_and_export
from trainer.run_folder import RunError


def fresh_images(per_class: int = 30, seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    """Images the model never saw, with their true label indices."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index, label in enumerate(CLASSES):
        for _ in range(per_class):
            images.append(synthetic_image(label, rng))
            labels.append(index)
    return np.stack(images), np.array(labels)


def test_run_folder_holds_the_artifacts(tiny_run: Path):
    for name in (
        "model.keras",
        "model.tflite",
        "model.json",
        "metrics.json",
        "config.json",
        "confusion.png",
        "curve.png",
    ):
        assert (tiny_run / name).is_file(), name
    assert not (tiny_run / "checkpoint.keras").exists()
    for name in ("confusion.png", "curve.png"):
        with Image.open(tiny_run / name) as png:
            assert png.format == "PNG" and png.width > 100


def test_manifest_is_the_contract(tiny_run: Path):
    manifest = read_manifest(tiny_run)
    assert manifest.labels == list(CLASSES)
    assert manifest.sha256 == sha256_file(tiny_run / "model.tflite")
    assert manifest.input.shape == [-1, 32, 32, 3]
    assert manifest.input.dtype == "uint8"
    assert manifest.input.scale == pytest.approx(1.0)  # raw pixels
    assert manifest.input.zero_point == 0
    assert manifest.output.shape == [-1, 3]
    assert manifest.output.dtype == "uint8"
    assert manifest.arch == "tiny"
    assert set(manifest.per_class_recall) == set(CLASSES)
    accuracy = manifest.accuracy
    assert accuracy["split"] == "validation"
    assert accuracy["n_val"] == 72  # 20% of 120 per class, stratified
    assert accuracy["float"] - accuracy["int8"] <= 0.01
    training = manifest.training
    assert training["counts"] == {"deer": 120, "fox": 120, "owl": 120}
    assert (training["n_train"], training["n_val"], training["epochs"]) == (288, 72, 2)
    assert training["skipped_unreadable"] == 1
    assert training["params"] > 0 and training["macs"] > 0
    assert manifest.created and manifest.trapcount_version


def test_metrics_and_config_are_kept(tiny_run: Path):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["accepted"] is True
    assert metrics["n_calibration"] >= 200
    assert len(metrics["confusion"]["int8"]) == 3
    assert len(metrics["history"]) == 2
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["status"] == "finished"
    assert config["hparams"]["arch"] == "tiny" and config["hparams"]["epochs"] == 2
    assert config["labels"] == list(CLASSES)
    assert "trapcount" in config["code"]


def test_edge_classifier_predicts_unseen_images_well_above_chance(tiny_run: Path):
    images, labels = fresh_images()
    with Classifier(tiny_run) as classifier:
        assert classifier.labels == list(CLASSES)
        predictions = classifier.classify(images)
    predicted = np.array([CLASSES.index(p.top_label) for p in predictions])
    assert np.mean(predicted == labels) >= 0.85  # chance is 0.33


def test_int8_agrees_with_the_float_model(tiny_run: Path):
    import keras

    images, _ = fresh_images(per_class=10, seed=7)
    model = keras.models.load_model(tiny_run / "model.keras")
    float_pred = np.argmax(model.predict(images.astype(np.float32), verbose=0), axis=1)
    with Classifier(tiny_run) as classifier:
        int8_pred = np.argmax(classifier.predict_proba(images), axis=1)
    assert np.mean(float_pred == int8_pred) >= 0.9


def test_tampered_tflite_is_refused(tiny_run: Path, tmp_path: Path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_run, copy)
    blob = bytearray((copy / "model.tflite").read_bytes())
    blob[-10] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(blob))
    with pytest.raises(ModelContractError, match="does not match its manifest") as info:
        Classifier(copy)
    assert "\n" not in str(info.value)


def test_manifest_with_wrong_label_count_is_refused(tiny_run: Path, tmp_path: Path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_run, copy)
    data = json.loads((copy / "model.json").read_text())
    data["labels"].append("badger")
    (copy / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelContractError, match="3 outputs but the manifest lists 4 labels"):
        Classifier(copy)


def test_quantization_guard_fires_and_leaves_nothing_deployable(
    class_folders: Path, tmp_path: Path
):
    out = tmp_path / "rejected"
    with pytest.raises(QuantizationDropError, match="points below float"):
        # A negative allowance demands int8 beat float by 50 points: it must fire.
        train_and_export(data=[class_folders], out=out, arch="tiny", epochs=1, max_quant_drop=-50)
    assert not (out / "model.json").exists()
    assert not (out / "model.tflite").exists()
    assert (out / "model.rejected.tflite").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accepted"] is False and metrics["max_quant_drop"] == -50
    assert json.loads((out / "config.json").read_text())["status"] == "rejected"


def test_resume_continues_an_interrupted_run(class_tar: Path, tmp_path: Path):
    out = tmp_path / "resumable"
    train_and_export(data=[class_tar], out=out, arch="tiny", epochs=3, stop_after=1, seed=1)
    assert (out / "checkpoint.keras").is_file()
    assert not (out / "model.tflite").exists()
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["epochs_done"] == 1
    with pytest.raises(RunError, match="already holds a run"):
        train_and_export(data=[class_tar], out=out, arch="tiny", epochs=3)
    train_and_export(data=None, out=out, resume=True)
    config = json.loads((out / "config.json").read_text())
    assert [row["epoch"] for row in config["history"]] == [1, 2, 3]
    assert config["status"] == "finished" and config["resumed"]
    assert read_manifest(out).training["epochs"] == 3
    assert not (out / "checkpoint.keras").exists()
    with pytest.raises(RunError, match="already finished training"):
        train_and_export(data=None, out=out, resume=True)


def test_init_from_adds_a_class_and_keeps_the_old_ones(
    tiny_run: Path, class_folders: Path, tmp_path: Path
):
    badgers = write_class_folders(tmp_path / "new", 60, seed=11, classes=("badger",))
    out = tmp_path / "finetuned"
    train_and_export(
        data=[class_folders, badgers],
        out=out,
        arch="tiny",
        epochs=2,
        init_from=tiny_run / "model.keras",
    )
    manifest = read_manifest(out)
    assert manifest.labels == ["badger", *CLASSES]
    assert manifest.output.shape == [-1, 4]
    assert manifest.training["init_from"] == str((tiny_run / "model.keras").resolve())
    images, labels = fresh_images(per_class=20, seed=5)
    rng = np.random.default_rng(6)
    badger_images = np.stack([synthetic_image("badger", rng) for _ in range(20)])
    with Classifier(out) as classifier:
        old = [classifier.labels.index(p.top_label) - 1 for p in classifier.classify(images)]
        new = [p.top_label for p in classifier.classify(badger_images)]
    assert np.mean(np.array(old) == labels) >= 0.8
    assert new.count("badger") >= 15


def test_distilled_run_learns_and_records_its_teacher(
    tiny_run: Path, class_folders: Path, tmp_path: Path
):
    out = tmp_path / "distilled"
    teacher = tiny_run / "model.keras"
    train_and_export(
        data=[class_folders],
        out=out,
        arch="tiny",
        epochs=3,
        seed=3,
        teacher=str(teacher),
        teacher_weight=0.7,
        teacher_tta="flip",
    )
    training = read_manifest(out).training
    assert training["teacher"] == [str(teacher.resolve())]
    assert training["teacher_sha256"] == [sha256_file(teacher)]
    assert training["teacher_weight"] == 0.7
    assert training["teacher_tta"] == "flip"
    images, labels = fresh_images(per_class=20, seed=8)
    with Classifier(out) as classifier:
        predicted = [classifier.labels.index(p.top_label) for p in classifier.classify(images)]
    assert np.mean(np.array(predicted) == labels) >= 0.8


def test_a_student_is_not_resumed_with_a_teacher_that_changed(
    tiny_run: Path, class_folders: Path, tmp_path: Path
):
    import keras

    from trainer.models import make_model

    teacher = tmp_path / "teacher" / "model.keras"
    teacher.parent.mkdir()
    shutil.copy2(tiny_run / "model.keras", teacher)
    out = tmp_path / "student"
    args = dict(data=[class_folders], out=out, arch="tiny", epochs=2, seed=3)
    train_and_export(**args, teacher=str(teacher), stop_after=1)

    # Shipping a new model over the teacher's path, as models/default is, mid-run.
    original = teacher.read_bytes()
    keras.utils.set_random_seed(9)
    make_model("tiny", (32, 32, 3), len(CLASSES)).save(teacher)
    with pytest.raises(DataError, match="changed since the run started"):
        train_and_export(out=out, data=None, resume=True)
    assert json.loads((out / "config.json").read_text())["status"] == "stopped"

    teacher.write_bytes(original)
    train_and_export(out=out, data=None, resume=True)
    assert read_manifest(out).training["teacher_sha256"] == [sha256_file(teacher)]


@pytest.mark.parametrize(
    "classes, message",
    [
        (("badger", *CLASSES), "has 3 outputs; this run has 4 labels"),
        (("badger", "fox", "owl"), "other labels"),
    ],
)
def test_teacher_with_other_labels_is_refused(
    tiny_run: Path, tmp_path: Path, classes: tuple[str, ...], message: str
):
    data = write_class_folders(tmp_path / "data", 12, seed=4, classes=classes, corrupt=False)
    out = tmp_path / "refused"
    with pytest.raises(DataError, match=message):
        train_and_export(
            data=[data], out=out, arch="tiny", epochs=1, teacher=str(tiny_run / "model.keras")
        )
    assert not out.exists()


def test_several_teachers_are_averaged_into_one(tmp_path: Path):
    import keras

    from trainer.models import make_model
    from trainer.teacher import load_teacher

    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        path = tmp_path / f"t{seed}" / "model.keras"
        path.parent.mkdir()
        make_model("tiny", (32, 32, 3), len(CLASSES)).save(path)
        paths.append(str(path))
    images = fresh_images(per_class=4, seed=5)[0].astype("float32")
    one, two = (load_teacher([p], list(CLASSES), (32, 32)) for p in paths)
    each = [keras.ops.convert_to_numpy(t(images)) for t in (one, two)]
    assert not np.allclose(each[0], each[1], atol=1e-3)
    ensemble = load_teacher(paths, list(CLASSES), (32, 32))
    assert np.allclose(
        keras.ops.convert_to_numpy(ensemble(images)), (each[0] + each[1]) / 2, atol=1e-6
    )


def test_flip_teacher_averages_each_crop_with_its_mirror_image(tmp_path: Path):
    import keras

    from trainer.models import make_model
    from trainer.teacher import load_teacher

    keras.utils.set_random_seed(1)
    path = tmp_path / "model.keras"
    make_model("tiny", (32, 32, 3), len(CLASSES)).save(path)
    images = fresh_images(per_class=4, seed=5)[0].astype("float32")
    mirrored = images[:, :, ::-1].copy()
    plain = load_teacher([str(path)], list(CLASSES), (32, 32))
    seen, seen_mirrored = (keras.ops.convert_to_numpy(plain(x)) for x in (images, mirrored))
    # A random network is not mirror-symmetric, so averaging the two views changes its output.
    assert not np.allclose(seen, seen_mirrored, atol=1e-3)
    flip = load_teacher([str(path)], list(CLASSES), (32, 32), tta="flip")
    taught = keras.ops.convert_to_numpy(flip(images))
    assert np.allclose(taught, (seen + seen_mirrored) / 2, atol=1e-6)
    assert np.allclose(taught, keras.ops.convert_to_numpy(flip(mirrored)), atol=1e-6)


def test_teacher_epochs_train_the_teacher_first_and_an_interrupted_one_continues(
    class_folders: Path, tmp_path: Path
):
    out = tmp_path / "born-again"
    teacher_folder = tmp_path / "born-again-teacher"
    args = dict(data=[class_folders], out=out, arch="tiny", epochs=3, seed=3, teacher_epochs=3)

    # Interrupted after one of the teacher's three epochs: no student yet.
    assert train_and_export(**args, stop_after=1) == teacher_folder
    assert not out.exists()
    assert json.loads((teacher_folder / "config.json").read_text())["status"] == "stopped"

    # The same call again continues the teacher from its checkpoint, then distils from it.
    assert train_and_export(**args) == out
    teacher_config = json.loads((teacher_folder / "config.json").read_text())
    assert [row["epoch"] for row in teacher_config["history"]] == [1, 2, 3]
    assert teacher_config["hparams"]["teacher"] is None
    assert teacher_config["hparams"]["teacher_epochs"] is None
    training = read_manifest(out).training
    assert training["teacher"] == [str((teacher_folder / "model.keras").resolve())]
    assert training["teacher_epochs"] == 3
    images, labels = fresh_images(per_class=20, seed=8)
    with Classifier(out) as classifier:
        predicted = [classifier.labels.index(p.top_label) for p in classifier.classify(images)]
    assert np.mean(np.array(predicted) == labels) >= 0.8

    # A finished run is not overwritten before another teacher is trained for it.
    with pytest.raises(RunError, match="already holds a run"):
        train_and_export(**args)
