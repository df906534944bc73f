"""Data sources, decoding and the stratified split, on files the tests write."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainer.conftest import CLASSES, synthetic_image, write_class_folders
from trainer.data import (
    DataError,
    calibration_images,
    decode_image,
    load_datasets,
    make_tf_dataset,
    stratified_split,
)


def test_class_folders_any_size_grey_or_colour_become_rgb_32(class_folders: Path, caplog):
    with caplog.at_level(logging.INFO, logger="trapcount.trainer"):
        data = load_datasets([class_folders])
    assert data.classes == list(CLASSES)
    assert data.images.shape == (240, 32, 32, 3)
    assert data.images.dtype == np.uint8
    assert data.counts() == {"deer": 80, "fox": 80, "owl": 80}
    assert data.skipped == 1
    assert "1 unreadable skipped" in caplog.text


def test_grey_image_is_three_equal_channels(tmp_path: Path):
    grey = Image.fromarray(synthetic_image("owl", np.random.default_rng(0), 64)).convert("L")
    grey.save(tmp_path / "g.png")
    image = decode_image((tmp_path / "g.png").read_bytes(), (32, 32))
    assert image.shape == (32, 32, 3)
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 1], image[..., 2])


def test_corrupt_bytes_decode_to_none():
    assert decode_image(b"not an image", (32, 32)) is None
    assert decode_image(b"", (32, 32)) is None


def test_tar_gz_of_class_folders_is_read_in_place(class_tar: Path, tmp_path: Path):
    data = load_datasets([class_tar], use_cache=False)
    assert data.classes == list(CLASSES)
    assert data.counts() == {"deer": 40, "fox": 40, "owl": 40}
    assert not any(tmp_path.iterdir()), "nothing may be extracted"


def test_archive_cache_gives_the_same_arrays(class_tar: Path):
    first = load_datasets([class_tar])  # decodes and writes the cache
    second = load_datasets([class_tar])  # reads it
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)


def test_cifar_python_batches_folder_and_tar(cifar_batches: Path, tmp_path: Path):
    from_dir = load_datasets([cifar_batches])
    assert from_dir.classes == list(CLASSES)
    assert from_dir.images.shape == (180, 32, 32, 3)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_batches, arcname="cifar-10-batches-py")
    from_tar = load_datasets([archive], use_cache=False)
    assert np.array_equal(from_dir.images, from_tar.images)
    assert np.array_equal(from_dir.labels, from_tar.labels)
    # the parent folder of cifar-10-batches-py is accepted too
    assert len(load_datasets([cifar_batches.parent / "cifar-10-batches-py"])) == 180


def test_cifar_test_batch_is_read_only_when_named(cifar_batches: Path, tmp_path: Path):
    """``test_batch`` stays out of the training data, and is read when given by path
    (``trapcount-train evaluate --split all`` on the held-out test set)."""
    import shutil

    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar_batches, folder)
    shutil.copy(cifar_batches / "data_batch_1", folder / "test_batch")
    assert len(load_datasets([folder])) == 180  # the five data batches only (here one)
    test = load_datasets([folder / "test_batch"])
    assert test.classes == list(CLASSES) and len(test) == 180
    (folder / "batches.meta").unlink()
    with pytest.raises(DataError, match=r"batches\.meta not found"):
        load_datasets([folder / "test_batch"])


def test_cifar_rows_are_planar_rgb(cifar_batches: Path):
    """Rows hold the R plane, then G, then B: a fox (red disc) must come out red."""
    data = load_datasets([cifar_batches])
    fox = data.images[data.labels == CLASSES.index("fox")].reshape(-1, 3).max(axis=0)
    assert fox[0] > fox[2] + 50


def test_labels_are_the_sorted_union_of_sources(class_folders: Path, tmp_path: Path):
    extra = write_class_folders(tmp_path / "extra", 5, seed=9, classes=("badger",), corrupt=False)
    data = load_datasets([extra, class_folders])
    assert data.classes == ["badger", *CLASSES]
    assert data.counts()["badger"] == 5


def test_split_is_stratified_shuffled_and_repeatable(class_folders: Path):
    data = load_datasets([class_folders])
    split = stratified_split(data, 0.25, seed=0)
    assert split.val.counts() == {"deer": 20, "fox": 20, "owl": 20}
    assert len(split.train) + len(split.val) == len(data)
    assert len(set(split.val.labels[:10].tolist())) > 1, "validation must be shuffled"
    again = stratified_split(data, 0.25, seed=0)
    assert np.array_equal(split.val.images, again.val.images)
    other = stratified_split(data, 0.25, seed=1)
    assert not np.array_equal(split.val.images, other.val.images)


def test_a_smaller_validation_split_lies_inside_a_larger_one(class_folders: Path):
    # A model distilled on the 0.1 split from a teacher trained on the 0.2 split of the
    # same seed is validated only on images the teacher never trained on.
    data = load_datasets([class_folders])
    rows = lambda ds: {img.tobytes() for img in ds.images}  # noqa: E731
    small, large = stratified_split(data, 0.1, seed=0), stratified_split(data, 0.2, seed=0)
    assert len(small.val) < len(large.val)
    assert rows(small.val) <= rows(large.val)
    assert not rows(small.val) & rows(large.train)


def test_soft_targets_mix_the_teacher_on_the_same_crop_with_the_smoothed_label(
    class_folders: Path,
):
    import keras

    from trainer.models import make_model

    data = load_datasets([class_folders])
    teacher = make_model("tiny", (32, 32, 3), len(data.classes))
    subset = data.subset(np.arange(8))
    kwargs = dict(training=False, augment=False, seed=0)
    plain = make_tf_dataset(subset.images, subset.labels, 3, 8, **kwargs)
    taught = make_tf_dataset(
        subset.images,
        subset.labels,
        3,
        8,
        **kwargs,
        soft_targets=teacher,
        soft_weight=0.3,
        label_smoothing=0.15,
    )
    (images, onehot), (same_images, target) = next(iter(plain)), next(iter(taught))
    expected = 0.3 * keras.ops.convert_to_numpy(teacher(images)) + 0.7 * (
        onehot.numpy() * 0.85 + 0.05
    )
    assert np.array_equal(images.numpy(), same_images.numpy())
    assert np.allclose(target.numpy(), expected, atol=1e-6)
    assert np.allclose(target.numpy().sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(target.numpy(), onehot.numpy() * 0.85 + 0.05, atol=1e-3)


def test_training_pipeline_runs_without_the_autotuning_thread(class_folders: Path):
    # Its wake-up, up to a minute apart, held up the start of every other epoch.
    data = load_datasets([class_folders])
    ds = make_tf_dataset(data.images, data.labels, 3, 8, training=True, augment=True, seed=0)
    assert ds.options().autotune.enabled is False
    for _epoch in range(2):  # a fresh iterator each epoch, as model.fit makes
        assert sum(len(labels) for _, labels in ds) == len(data.images) // 8 * 8


def test_calibration_set_covers_every_class_and_the_pixel_range(class_folders: Path):
    data = load_datasets([class_folders])
    images = calibration_images(data, 200)
    assert len(images) >= 200
    assert images.min() == 0 and images.max() == 255


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "data not found"),
        (lambda tmp: tmp, "no readable images"),
        (lambda tmp: write_class_folders(tmp / "one", 3, 0, ("fox",), False), "at least 2"),
    ],
    ids=["missing", "empty", "one-class"],
)
def test_unusable_data_is_a_data_error(tmp_path: Path, make, message):
    with pytest.raises(DataError, match=message):
        load_datasets([make(tmp_path)])


def test_a_class_folder_that_is_not_a_valid_label_is_refused_before_decoding(tmp_path: Path):
    """The agent refuses a model whose labels break the label rule, so training must not
    make one: "Red Fox/" is refused, naming the folder and a name to rename it to."""
    root = write_class_folders(tmp_path / "crops", 3, seed=0, classes=("deer", "fox"))
    (root / "fox").rename(root / "Red Fox")
    with pytest.raises(DataError) as info:
        load_datasets([root])
    message = str(info.value)
    assert f"class folder 'Red Fox' in {root} is not a valid label" in message
    assert "rename the folder, e.g. to 'red_fox'" in message and "\n" not in message

    # The same in an archive, read in place: the class is the member's folder name.
    archive = tmp_path / "crops.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(root.rglob("*.png")):
            tar.add(path, arcname=f"train/{path.parent.name}/{path.name}")
    with pytest.raises(DataError, match=r"class folder 'Red Fox' in .*crops\.tar is not a valid"):
        load_datasets([archive], use_cache=False)

    # Renamed as suggested, the same images train as two classes.
    (root / "Red Fox").rename(root / "red_fox")
    assert load_datasets([root]).classes == ["deer", "red_fox"]
