"""Labelled images in, uint8 arrays and tf.data pipelines out.

Sources (``--data``, repeatable; the label set is the sorted union of all class names):

- a directory of class folders (``DIR/<class>/*.jpg|png``, any depth above the class folder);
- a ``.tar`` / ``.tar.gz`` / ``.tgz`` of class folders, read in place (streamed, never
  extracted) such as ``cifar10-train-jpeg.tar.gz`` (``train/<class>/NNNN.jpg``);
- the official CIFAR-10 python batches: ``cifar-10-python.tar.gz`` or its extracted folder
  ``cifar-10-batches-py`` (the five ``data_batch_*`` files; ``test_batch`` stays held out);
- ``cifar10``: ``keras.datasets.cifar10`` (training part; downloads once, needs network);
- the CIFAR-10 test set, for ``trapcount-train evaluate --split all`` only: a path to the
  ``test_batch`` file of ``cifar-10-batches-py``, or ``cifar10-test`` (keras.datasets);
- a COCO Camera Traps ``.json`` or its spec (trainer.cct), cut into crops by trainer.crops.

The class of an image is the name of the folder that holds it. Images of any size, PNG or
JPEG, grey or colour, become RGB uint8 at the model input size; corrupt or unreadable files
are skipped and counted. Decoded archives are cached as ``.npz`` under ``~/.cache/trapcount``
(``TRAPCOUNT_CACHE_DIR`` overrides; never inside the repository) so ``export`` and
``evaluate`` do not decode 50,000 JPEGs again.

Everything is held in memory as uint8 (50,000 CIFAR images are 150 MB). Trap datasets are
crops of animals, far smaller than that; a dataset that does not fit would need a
streaming ``tf.data`` reader instead, which this module deliberately does not have yet.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import re
import tarfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_agent.labels import RULE, is_valid_label, shown
from trainer.cct import DataError, is_coco_spec, spec_key
from trainer.cct_plan import group_split
from trainer.crops import coco_arrays

log = logging.getLogger("trapcount.trainer")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CIFAR10_KEYWORD = "cifar10"
CIFAR10_TEST_KEYWORD = "cifar10-test"
KEYWORDS = (CIFAR10_KEYWORD, CIFAR10_TEST_KEYWORD)
_CACHE_FORMAT = 1  # bump when decoding changes, so old caches are ignored


def suggested_label(name: str) -> str:
    """A valid label close to the class name ``name`` ("Red Fox" -> "red_fox")."""
    label = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_-")[:64]
    return label or "a_name"


def check_class_names(names: Iterable[str], where: str) -> None:
    """Refuse a class name that is not a valid label (edge_agent.labels): the model's labels
    are its class names, and the agent refuses a model whose labels break the rule, so
    training must never produce one. Renaming is left to the user, not done here: "Red Fox"
    and "red_fox" would otherwise become one class without anyone deciding so."""
    for name in sorted(set(names)):
        if not is_valid_label(name):
            raise DataError(
                f"class folder {shown(name)} in {where} is not a valid label ({RULE}); "
                f"rename the folder, e.g. to {suggested_label(name)!r}"
            )


@dataclass
class Dataset:
    """Images (N, H, W, 3) uint8 RGB, labels (N,) int32 indices into ``classes``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    sources: list[str] = field(default_factory=list)
    skipped: int = 0
    # COCO Camera Traps crops: split group per image ("" = split per class), training repeats
    groups: np.ndarray | None = None
    repeats: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        """Images per class name, in label order."""
        bins = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, bins, strict=True)}

    def subset(self, index: np.ndarray) -> Dataset:
        groups = None if self.groups is None else self.groups[index]
        images, labels = self.images[index], self.labels[index]
        return Dataset(images, labels, list(self.classes), list(self.sources), groups=groups)


@dataclass
class Split:
    train: Dataset
    val: Dataset
    val_fraction: float
    seed: int
    groups: dict = field(default_factory=dict)  # groups per kind on each side (group_split)


# -- decoding --------------------------------------------------------------------------


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 -> (h, w) like the edge crops: INTER_AREA down, INTER_LINEAR up.

    Aspect ratio is not preserved (the agent's crops are square already).
    """
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """Encoded PNG/JPEG bytes -> RGB uint8 (h, w, 3), or None when it cannot be decoded.

    ``IMREAD_COLOR`` turns grey into three channels, drops alpha and applies EXIF rotation.
    """
    if not data:
        return None
    buffer = np.frombuffer(data, np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.size == 0:
        return None
    return resize_rgb(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)


def _is_image_name(name: str) -> bool:
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES)


class _Collector:
    """Accumulates decoded images per class name, with a progress line now and then."""

    def __init__(self, source: str, total: int | None) -> None:
        self.source = source
        self.total = total
        self.images: list[np.ndarray] = []
        self.names: list[str] = []
        self.skipped = 0
        self.seen = 0
        self._started = time.monotonic()
        self._last_report = self._started

    def add(self, class_name: str, image: np.ndarray | None, what: str) -> None:
        self.seen += 1
        if image is None:
            self.skipped += 1
            log.debug("skipped unreadable image %s", what)
        else:
            self.images.append(image)
            self.names.append(class_name)
        now = time.monotonic()
        if now - self._last_report >= 5.0:
            self._last_report = now
            of = f"/{self.total}" if self.total else ""
            log.info(
                "  %s: %d%s images read (%.0f s)", self.source, self.seen, of, now - self._started
            )

    def finish(self, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
        elapsed = time.monotonic() - self._started
        log.info(
            "%s: %d images in %d classes, %d unreadable skipped (%.1f s)",
            self.source,
            len(self.images),
            len(set(self.names)),
            self.skipped,
            elapsed,
        )
        empty = np.zeros((0, *size, 3), np.uint8)
        images = np.stack(self.images) if self.images else empty
        return images, self.names, self.skipped


# Written by ``trapcount collect export`` (edge_agent.office.dataset); named here rather than
# imported, as the trainer does not import the edge agent's office tools.
EXPORT_CCT_FILE = "cct.json"
EXPORT_FRAMES_DIR = "frames"


def read_image_folder(root: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
    """A directory whose images sit in class folders; the class is the parent folder's name."""
    images = sorted(p for p in root.rglob("*") if p.is_file() and _is_image_name(p.name))
    if (root / EXPORT_CCT_FILE).is_file():
        # A ``trapcount collect export``: its class folders hold the crops; ``frames/`` holds
        # the full frames that its cct.json lists with boxes, which are no class of their own.
        frames = root / EXPORT_FRAMES_DIR
        images = [p for p in images if frames not in p.parents]
    files = [p for p in images if p.parent != root]
    if not files and images:
        raise DataError(
            f"the images in {root} are not in class folders; the class of an image is the name "
            f"of its folder, so pass {root.parent} (which holds {root.name}/) instead"
        )
    # Checked before minutes of decoding; the message names the folder itself.
    for folder in sorted({path.parent for path in files}):
        check_class_names([folder.name], str(folder.parent))
    collector = _Collector(str(root), len(files))
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        collector.add(path.parent.name, decode_image(data, size), str(path))
    return collector.finish(size)


def read_image_tar(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
    """A .tar(.gz) of class folders, streamed member by member (nothing is extracted)."""
    collector = _Collector(str(path), None)
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not member.isfile() or not _is_image_name(member.name):
                    continue
                parts = member.name.replace("\\", "/").strip("/").split("/")
                if len(parts) < 2:
                    continue  # an image at the archive root has no class folder
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                collector.add(parts[-2], decode_image(data, size), f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None
    return collector.finish(size)


# -- CIFAR-10 python batches ------------------------------------------------------------


def _cifar_rows_to_images(rows: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """CIFAR rows (N, 3072: 1024 R, 1024 G, 1024 B) -> RGB (N, h, w, 3)."""
    images = np.asarray(rows, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    if size != (32, 32):
        images = np.stack([resize_rgb(image, size) for image in images])
    return np.ascontiguousarray(images)


def _unpickle(data: bytes, what: str) -> dict:
    try:
        obj = pickle.loads(data, encoding="bytes")
    except Exception as exc:  # pickle raises many types on garbage
        raise DataError(f"{what} is not a CIFAR python batch: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{what} is not a CIFAR python batch (not a dict)")
    return obj


def _cifar_from_blobs(
    meta: bytes | None, batches: dict[str, bytes], what: str, size: tuple[int, int]
) -> tuple[np.ndarray, list[str], int]:
    if meta is None:
        raise DataError(f"{what}: batches.meta not found")
    if not batches:
        raise DataError(f"{what}: no data_batch_* files found")
    label_names = _unpickle(meta, f"{what}/batches.meta").get(b"label_names")
    if not label_names:
        raise DataError(f"{what}/batches.meta has no label_names")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in label_names]
    images, labels = [], []
    for batch_name in sorted(batches):
        batch = _unpickle(batches[batch_name], f"{what}/{batch_name}")
        try:
            rows = np.asarray(batch[b"data"], np.uint8)
            batch_labels = [int(v) for v in batch[b"labels"]]
        except KeyError as exc:
            raise DataError(f"{what}/{batch_name} lacks {exc.args[0]!r}") from None
        if rows.ndim != 2 or rows.shape[1] != 3072 or len(batch_labels) != rows.shape[0]:
            raise DataError(f"{what}/{batch_name}: data must be N x 3072 with N labels")
        images.append(_cifar_rows_to_images(rows, size))
        labels.extend(batch_labels)
    if any(not 0 <= v < len(names) for v in labels):
        raise DataError(f"{what}: label index outside batches.meta label_names")
    log.info("%s: %d images in %d classes (CIFAR python batches)", what, len(labels), len(names))
    return np.concatenate(images), [names[v] for v in labels], 0


def _is_cifar_dir(path: Path) -> bool:
    return (path / "batches.meta").is_file() and any(path.glob("data_batch_*"))


def read_cifar_dir(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
    if not _is_cifar_dir(path) and _is_cifar_dir(path / "cifar-10-batches-py"):
        path = path / "cifar-10-batches-py"
    batches = {p.name: p.read_bytes() for p in path.glob("data_batch_*") if p.is_file()}
    meta_path = path / "batches.meta"
    meta = meta_path.read_bytes() if meta_path.is_file() else None
    return _cifar_from_blobs(meta, batches, str(path), size)


def _tar_member_names(path: Path) -> list[str]:
    try:
        with tarfile.open(path, mode="r:*") as archive:
            names = []
            for member in archive:
                names.append(member.name)
                if len(names) > 64:  # CIFAR archives hold 8 files; an image archive many
                    break
            return names
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None


def _is_cifar_tar(path: Path) -> bool:
    return any(os.path.basename(name) == "batches.meta" for name in _tar_member_names(path))


def read_cifar_tar(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
    meta, batches = None, {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                base = os.path.basename(member.name)
                if not member.isfile():
                    continue
                if base == "batches.meta" or base.startswith("data_batch_"):
                    handle = archive.extractfile(member)
                    blob = handle.read() if handle is not None else b""
                    if base == "batches.meta":
                        meta = blob
                    else:
                        batches[base] = blob
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None
    return _cifar_from_blobs(meta, batches, str(path), size)


def read_cifar_test_batch(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str], int]:
    """The official ``test_batch`` file, labelled by the ``batches.meta`` beside it."""
    meta_path = path.parent / "batches.meta"
    meta = meta_path.read_bytes() if meta_path.is_file() else None
    return _cifar_from_blobs(meta, {path.name: path.read_bytes()}, str(path.parent), size)


def read_keras_cifar10(
    size: tuple[int, int], *, test: bool = False
) -> tuple[np.ndarray, list[str], int]:
    """``keras.datasets.cifar10`` training (or test) images (downloaded once into ~/.keras)."""
    from keras.datasets import cifar10  # heavy: only for this source

    try:
        train_part, test_part = cifar10.load_data()
        x_train, y_train = test_part if test else train_part
    except Exception as exc:  # urllib, ssl, socket, tarfile all raise different types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot download CIFAR-10 through keras.datasets (offline?): {reason}; "
            "pass cifar-10-python.tar.gz or a folder of class images instead"
        ) from None
    names = [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    images = x_train if size == (32, 32) else np.stack([resize_rgb(i, size) for i in x_train])
    part = "test" if test else "training"
    log.info("keras.datasets.cifar10 %s set: %d images in 10 classes", part, len(images))
    return images, [names[int(v)] for v in y_train.reshape(-1)], 0


# -- cache ------------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get("TRAPCOUNT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trapcount"


def _cache_path(path: Path, size: tuple[int, int]) -> Path:
    stat = path.stat()
    key = f"{_CACHE_FORMAT}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / "datasets" / f"{path.name}.{size[0]}x{size[1]}.{digest}.npz"


def _cached(path: Path, size: tuple[int, int], reader) -> tuple[np.ndarray, list[str], int]:
    """Decode an archive once; later calls load the arrays (the key includes size and mtime)."""
    try:
        target = _cache_path(path, size)
    except OSError:
        return reader(path, size)
    if target.is_file():
        try:
            with np.load(target, allow_pickle=False) as data:
                names = [str(n) for n in data["names"]]
                images, skipped = data["images"], int(data["skipped"])
            log.info(
                "%s: %d images in %d classes, %d unreadable skipped (cached %s)",
                path, len(images), len(set(names)), skipped, target,
            )  # fmt: skip
            return images, names, skipped
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache %s", target)
    images, names, skipped = reader(path, size)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp.npz")
        np.savez(tmp, images=images, names=np.array(names), skipped=np.int64(skipped))
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("cannot write dataset cache %s: %s", target, exc)
    return images, names, skipped


# -- public entry points ------------------------------------------------------------------


def _is_tar(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def read_source(
    spec: str | Path, size: tuple[int, int], use_cache: bool = True
) -> tuple[np.ndarray, list[str], int]:
    """One ``--data`` value -> (images, class name per image, skipped count)."""
    if str(spec) in KEYWORDS:
        return read_keras_cifar10(size, test=str(spec) == CIFAR10_TEST_KEYWORD)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_file() and path.name == "test_batch":
        return read_cifar_test_batch(path, size)
    if path.is_dir():
        if _is_cifar_dir(path) or _is_cifar_dir(path / "cifar-10-batches-py"):
            return read_cifar_dir(path, size)
        return read_image_folder(path, size)
    if _is_tar(path) or tarfile.is_tarfile(path):
        reader = read_cifar_tar if _is_cifar_tar(path) else read_image_tar
        return _cached(path, size, reader) if use_cache else reader(path, size)
    raise DataError(
        f"{path} is neither a folder of class folders, a .tar/.tar.gz of them, "
        "CIFAR-10 python batches, a COCO Camera Traps .json nor 'cifar10'"
    )


def load_datasets(
    specs: list[str] | tuple[str, ...],
    size: tuple[int, int] = (32, 32),
    *,
    use_cache: bool = True,
    min_classes: int = 2,
) -> Dataset:
    """Read every ``--data`` source; labels are the sorted union of class names."""
    if not specs:
        raise DataError("no --data given")
    unique: dict[str, str] = {}
    for spec in specs:
        if is_coco_spec(spec):
            key = spec_key(spec)
        else:
            key = str(spec) if str(spec) in KEYWORDS else str(Path(spec).expanduser().resolve())
        if key in unique:
            log.warning("--data %s given twice; reading it once", spec)
        else:
            unique[key] = spec if isinstance(spec, dict) else str(spec)
    parts = []
    for spec in unique.values():
        if is_coco_spec(spec):  # its labels are checked while it is planned (trainer.cct)
            parts.append((spec, *coco_arrays(spec, size, cache_dir() if use_cache else None)))
            continue
        images, names, skipped = read_source(spec, size, use_cache)
        check_class_names(names, str(spec))
        parts.append((spec, images, names, skipped, np.full(len(names), ""), None))
    classes = sorted({name for part in parts for name in part[2]})
    if not classes:
        raise DataError(f"no readable images in {', '.join(str(s) for s in specs)}")
    if len(classes) < min_classes:
        raise DataError(
            f"need at least {min_classes} classes, found {len(classes)} ({', '.join(classes)}); "
            "put each class's images in its own folder"
        )
    index = {name: i for i, name in enumerate(classes)}
    images = np.concatenate([p[1] for p in parts if len(p[1])])
    labels = np.array([index[n] for p in parts for n in p[2]], np.int32)
    skipped = sum(p[3] for p in parts)
    data = Dataset(images, labels, classes, [p[0] for p in parts], skipped)
    if any(p[5] is not None for p in parts):
        data.groups = np.concatenate([p[4] for p in parts]).astype(str)
        ones = [np.ones(len(p[2]), int) if p[5] is None else p[5] for p in parts]
        data.repeats = np.concatenate(ones)
    log.info(
        "data: %d images, %d classes, %d skipped as unreadable", len(data), len(classes), skipped
    )
    return data


def stratified_split(data: Dataset, val_fraction: float, seed: int) -> Split:
    """Shuffle, then hold out ``val_fraction`` of every class (at least one image of each
    class with two or more). The same seed and data give the same split, so ``export`` and
    ``evaluate`` measure on exactly the images training never saw. COCO Camera Traps crops
    go by whole groups (a location on one side only: trainer.cct.group_split); training
    repeats each ``data.repeats`` times."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels == label)
        members = members if data.groups is None else members[data.groups[members] == ""]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        if val_fraction > 0 and n_val == 0 and len(members) >= 2:
            n_val = 1
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    summary: dict = {}
    if data.groups is not None:
        *grouped, summary = group_split(data, val_fraction, rng)
        train_idx.append(grouped[0])
        val_idx.append(grouped[1])
    train = np.concatenate(train_idx)
    val = np.concatenate(val_idx)
    if data.repeats is not None:
        train = np.repeat(train, data.repeats[train])
    rng.shuffle(train)
    rng.shuffle(val)
    return Split(data.subset(train), data.subset(val), val_fraction, seed, summary)


def calibration_images(data: Dataset, count: int = 256, seed: int = 0) -> np.ndarray:
    """At least ``count`` images (fewer only if the data has fewer) covering every class
    evenly, for int8 calibration. One image gets a 0 and a 255 pixel so the converter sees
    the full input range and the uint8 input is raw pixels (scale 1, zero point 0)."""
    rng = np.random.default_rng(seed)
    per_class = -(-count // len(data.classes))
    chosen = []
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels == label)
        rng.shuffle(members)
        chosen.append(members[:per_class])
    index = np.concatenate(chosen)
    if len(index) < count:  # small classes: top up from the rest
        rest = np.setdiff1d(np.arange(len(data)), index)
        rng.shuffle(rest)
        index = np.concatenate([index, rest[: count - len(index)]])
    images = data.images[index].copy()
    images[0, 0, 0, :] = 0
    images[0, 0, 1, :] = 255
    return images


def batched(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def class_counts(names: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(names).items()))


# -- tf.data ------------------------------------------------------------------------------


def training_steps(n_images: int, batch_size: int, training: bool = True) -> int:
    """Batches per epoch: whole batches only when training (if there is at least one)."""
    if training and n_images >= batch_size:
        return n_images // batch_size
    return math.ceil(n_images / batch_size)


def usable_cores() -> int:
    """Cores this process may run on (a container's share, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def make_tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    augment: bool,
    seed: int,
    translate: int | None = None,
    cutout: int = 0,
    soft_targets=None,
    soft_weight: float = 0.5,
    label_smoothing: float = 0.0,
    ir: float = 0.0,
    grey: float = 0.0,
):
    """A batched tf.data pipeline of (float32 raw pixels 0-255, one-hot labels).

    Only indices are shuffled (a 40,000-image shuffle buffer would copy every image each
    epoch); each batch is gathered from the in-memory array at once. Augmentation
    (reflect-pad by ``translate`` pixels, default 1/8 of the side, a random crop per image,
    horizontal flip, then with ``cutout`` a square of that side, centred anywhere and
    clipped at the border, set to the batch's mean colour as in DeVries & Taylor 2017)
    happens here, vectorized over the batch, so the exported model has none of it.

    ``soft_targets`` (knowledge distillation) is a callable mapping a batch of crops to
    class probabilities, a teacher network: the target of each crop becomes
    ``soft_weight`` x its output on that very crop, after augmentation (the teacher sees
    the shift, flip and cutout the student sees; in colour, see ``ir``) plus the rest x
    the label smoothed by ``label_smoothing``.

    ``ir`` (training only, with or without ``augment``): the probability that a crop, after
    the shift, flip and cutout, becomes infrared-like (trainer.looks.ir_like: grey in three
    equal channels, random contrast, gamma, noise, some blur). The teacher still sees the
    colour crop: it learned on colour, and the grey student is to agree with what it says
    about the same crop in colour. With ``ir`` 0 the pipeline has none of these ops.
    ``grey`` (training only): then the probability that a crop the IR look did not take is
    turned plain grey (trainer.looks.plain_grey); the teacher still sees colour.
    """
    # TensorFlow only for the training pipeline: loading and splitting (evaluate, compare) do
    # not need it.
    import tensorflow as tf

    from trainer.looks import ir_like, plain_grey

    height, width = images.shape[1:3]
    if translate is None:
        pad_h, pad_w = max(height // 8, 1), max(width // 8, 1)
    else:
        pad_h = pad_w = int(translate)
    all_images = tf.constant(images)
    all_labels = tf.constant(labels.astype(np.int32))
    ds = tf.data.Dataset.range(len(images))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    # Training drops the last, short batch: at a high learning rate one step on a few dozen
    # images (and BatchNorm statistics taken from them) knocked a checkpoint 20 points back.
    ds = ds.batch(batch_size, drop_remainder=training and len(images) >= batch_size)

    def random_crop_flip(batch):
        n = tf.shape(batch)[0]
        padded = tf.pad(batch, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], "REFLECT")
        dy = tf.random.uniform([n], 0, 2 * pad_h + 1, dtype=tf.int32)
        dx = tf.random.uniform([n], 0, 2 * pad_w + 1, dtype=tf.int32)
        rows = dy[:, None] + tf.range(height)[None, :]
        cols = dx[:, None] + tf.range(width)[None, :]
        batch = tf.gather(padded, rows, axis=1, batch_dims=1)
        batch = tf.gather(batch, cols, axis=2, batch_dims=1)
        flip = tf.random.uniform([n]) < 0.5
        return tf.where(flip[:, None, None, None], tf.reverse(batch, axis=[2]), batch)

    def random_cutout(batch):
        n = tf.shape(batch)[0]
        cy = tf.random.uniform([n], 0, height, dtype=tf.int32)
        cx = tf.random.uniform([n], 0, width, dtype=tf.int32)
        top, left = cy - cutout // 2, cx - cutout // 2
        ys, xs = tf.range(height)[None, :], tf.range(width)[None, :]
        inside_y = (ys >= top[:, None]) & (ys < top[:, None] + cutout)
        inside_x = (xs >= left[:, None]) & (xs < left[:, None] + cutout)
        square = inside_y[:, :, None, None] & inside_x[:, None, :, None]
        mean_colour = tf.reduce_mean(batch, axis=[0, 1, 2], keepdims=True)
        return tf.where(square, mean_colour, batch)

    def load(index):
        batch = tf.cast(tf.gather(all_images, index), tf.float32)
        if training and augment:
            batch = random_crop_flip(batch)
            if cutout > 0:
                batch = random_cutout(batch)
        colour = batch  # what a teacher sees
        if training and ir > 0:
            batch = ir_like(batch, ir)
        if training and grey > 0:
            batch = plain_grey(batch, grey)
        target = tf.one_hot(tf.gather(all_labels, index), num_classes)
        if soft_targets is not None:
            smoothed = target * (1.0 - label_smoothing) + label_smoothing / num_classes
            taught = tf.cast(soft_targets(colour, training=False), tf.float32)
            target = soft_weight * taught + (1.0 - soft_weight) * smoothed
        return batch, target

    # Fixed parallelism and autotuning off: Keras makes a new iterator every epoch, and
    # deleting the old one waited on one of its threads, most likely the autotuner's.
    # Half the epochs of a 60-epoch CIFAR-10 run began with a 33-61 s first step (py-spy:
    # the main thread in ~RootDataset::Iterator); with autotuning off none did
    # (docs/benchmarks.md, "An ensemble teacher").
    ds = ds.map(load, num_parallel_calls=usable_cores(), deterministic=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)
