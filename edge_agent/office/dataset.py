"""``trapcount collect export``: the kept crops as a training dataset for ``trapcount-train
--data``, each under its reviewed label (else the predicted one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.files import make_private_dir, write_private
from edge_agent.labels import is_valid_label
from edge_agent.store.database import Store

UNREVIEWED_FILE = "unreviewed.txt"
# Not classes to train an animal classifier on: people (privacy) and the unsure.
# "empty": a reviewer said the crop shows no animal (``trapcount review``).
NOT_TRAINED = frozenset({"person", "unknown", "empty"})


@dataclass
class DatasetExport:
    out: Path
    images: int
    per_label: dict[str, int]
    unreviewed: int
    missing: int  # rows whose file is gone
    # Rows skipped because their label is no valid folder name (edge_agent.labels: "../x",
    # "a/b", from a tampered or foreign database), or their folder leads outside ``out``.
    bad_labels: int = 0


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (symbolic links followed) to below ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def export_dataset(store: Store, out: Path) -> DatasetExport:
    """Write the kept crops as an image-folder dataset ``out/<label>/<file>`` (the reviewed
    label if set, else the predicted one) that ``trapcount-train --data`` reads, plus
    ``out/unreviewed.txt`` listing those still unreviewed (relative paths, one a line).
    People, ``unknown`` and crops a reviewer marked ``empty`` are not exported; folders are
    0700, files 0600. A row whose label is no valid label is skipped and counted, never
    written outside ``out`` nor into nested folders."""
    out = Path(out)
    make_private_dir(out)
    per_label: dict[str, int] = {}
    unreviewed: list[str] = []
    missing = bad_labels = 0
    for row in store.media(kind="crop"):
        label = row.reviewed_label or row.label
        if label in NOT_TRAINED or row.privacy_status == "blurred":
            continue
        if not is_valid_label(label):
            bad_labels += 1
            continue
        folder = out / label
        target = folder / f"m{row.id}-{Path(row.path).name}"
        # In depth: a valid label is one plain name, but out/<label> may be a symbolic link.
        if not inside(target, out):
            bad_labels += 1
            continue
        try:
            data = Path(row.path).read_bytes()
        except OSError:
            missing += 1
            continue
        make_private_dir(folder)
        target.unlink(missing_ok=True)
        write_private(target, data)
        per_label[label] = per_label.get(label, 0) + 1
        if row.reviewed_label is None:
            unreviewed.append(f"{label}/{target.name}")
    listing = out / UNREVIEWED_FILE
    listing.unlink(missing_ok=True)
    write_private(listing, "".join(f"{line}\n" for line in unreviewed).encode())
    return DatasetExport(
        out, sum(per_label.values()), per_label, len(unreviewed), missing, bad_labels
    )
