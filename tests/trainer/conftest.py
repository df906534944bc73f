"""Synthetic labelled images, written the ways users hand them to the trainer.

Three visually separable classes (each differs in colour *and* in brightness pattern, so
the grey copies stay separable too), with noise and jitter:

- ``fox``:  a bright red disc on a dark background
- ``deer``: green horizontal stripes
- ``owl``:  a dark square on a light blue background

Session-scoped fixtures train the tiny model once and share the run folder.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("deer", "fox", "owl")  # sorted: the trainer's label order
# For runs of a few epochs of the tiny network: int8 can lose an image or two of a small
# validation split against float, more than the export's 1-point default, and which run
# does is down to thread timing. Tests of other things pass this; the refusal has its own.
QUANT_DROP_ANY = ("--max-quant-drop", "100")


def synthetic_image(label: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One RGB uint8 image of ``label`` at ``size`` x ``size``."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy = rng.uniform(0.35, 0.65, size=2)
    image = np.zeros((size, size, 3), np.float32)
    if label == "fox":
        image[:] = (30, 25, 20)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < rng.uniform(0.06, 0.1)
        image[disc] = (230, 90, 40)
    elif label == "deer":
        period = rng.uniform(0.18, 0.26)
        stripes = ((yy + rng.uniform(0, 1)) / period) % 1.0 < 0.5
        image[:] = (40, 60, 30)
        image[stripes] = (90, 200, 80)
    elif label == "owl":
        image[:] = (150, 190, 235)
        half = rng.uniform(0.15, 0.25)
        square = (abs(xx - cx) < half) & (abs(yy - cy) < half)
        image[square] = (35, 30, 45)
    elif label == "badger":  # the class that --init-from tests add
        image[:] = (128, 128, 128)
        image[:, : size // 2] = (20, 20, 20)
        image[:, size // 2 :] = (245, 245, 245)
    else:
        raise ValueError(label)
    image += rng.normal(0, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_class_folders(
    root: Path,
    per_class: int,
    seed: int,
    classes: tuple[str, ...] = CLASSES,
    corrupt: bool = True,
) -> Path:
    """``root/<class>/NNN.png|jpg``: mixed PNG/JPEG, some grey, some larger than 32x32,
    plus one corrupt file."""
    rng = np.random.default_rng(seed)
    for label in classes:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = 32 if i % 5 else int(rng.choice([48, 64, 96]))
            pil = Image.fromarray(synthetic_image(label, rng, size))
            if i % 7 == 3:
                pil = pil.convert("L")
            if i % 2:
                pil.save(folder / f"{i:03d}.png")
            else:
                pil.save(folder / f"{i:03d}.jpg", quality=92)
    if corrupt:
        (root / classes[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root


def write_class_tar(path: Path, per_class: int, seed: int, prefix: str = "train") -> Path:
    """A .tar.gz of ``prefix/<class>/NNN.jpg``, like cifar10-train-jpeg.tar.gz."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as archive:
        for label in CLASSES:
            for i in range(per_class):
                buffer = io.BytesIO()
                Image.fromarray(synthetic_image(label, rng)).save(buffer, format="JPEG")
                info = tarfile.TarInfo(f"{prefix}/{label}/{i:04d}.jpg")
                info.size = buffer.tell()
                buffer.seek(0)
                archive.addfile(info, buffer)
    return path


def write_cifar_batches(folder: Path, per_class: int, seed: int) -> Path:
    """The official CIFAR-10 python format: ``data_batch_1`` (b'data' N x 3072 uint8, planes
    R, G, B; b'labels') and ``batches.meta`` (b'label_names')."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    for index, label in enumerate(CLASSES):
        for _ in range(per_class):
            rows.append(synthetic_image(label, rng).transpose(2, 0, 1).reshape(-1))
            labels.append(index)
    order = rng.permutation(len(rows))
    batch = {
        b"batch_label": b"training batch 1 of 1",
        b"data": np.stack(rows)[order],
        b"labels": [labels[i] for i in order],
        b"filenames": [f"{i}.png".encode() for i in order],
    }
    meta = {b"label_names": [name.encode() for name in CLASSES], b"num_cases_per_batch": 0}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trainer-data")


@pytest.fixture(scope="session")
def class_folders(data_root: Path) -> Path:
    return write_class_folders(data_root / "folders", per_class=80, seed=1)


@pytest.fixture(scope="session")
def class_tar(data_root: Path) -> Path:
    return write_class_tar(data_root / "frames.tar.gz", per_class=40, seed=2)


@pytest.fixture(scope="session")
def cifar_batches(data_root: Path) -> Path:
    return write_cifar_batches(data_root / "cifar-10-batches-py", per_class=60, seed=3)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Dataset caches go to a temp folder, not the developer's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAPCOUNT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, class_folders: Path, class_tar: Path):
    """One tiny model trained on folders + tar.gz and exported: the shared model folder."""
    from trainer.run import train_and_export

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train_and_export(data=[class_folders, class_tar], out=out, arch="tiny", epochs=2, seed=0)
