"""``trapcount-train compare OLD NEW --data DIR``: two exported models on the same images.

Both models run int8 through the edge agent's own classifier on every image of ``--data``
(give a held-out validation set: images neither model was trained on). The models may
have different labels, as after a fine-tune that added a local species:

- **Per class** (every label of either model, and every class of the data): how many images
  the data has of it and each model's recall; ``-`` where a model lacks the label.
- **Overall, own labels**: each model's accuracy on the images whose true label *it* knows
  (a model cannot be right about a class it has never heard of).
- **Overall, shared labels**: both models on the images whose true label *both* know, the
  same images for both. This is the verdict: NEW is *worse* when its shared accuracy is
  below OLD's by more than ``tolerance`` points, and ``compare`` then exits non-zero unless
  ``--force``. A NEW model that predicts its new label for an image of a shared class is
  wrong on that image, so a new class cannot hide a loss on the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.manifest import read_manifest
from trainer.data import DataError, Dataset, load_datasets
from trainer.evaluate import predict_int8


@dataclass
class ModelScores:
    """One model's int8 predictions on the data (true labels as data class names)."""

    name: str
    labels: list[str]
    truth: list[str]  # per image, the data's class name
    predicted: list[str]  # per image, the model's label

    def accuracy_on(self, classes: set[str]) -> tuple[float | None, int]:
        pairs = [(t, p) for t, p in zip(self.truth, self.predicted, strict=True) if t in classes]
        if not pairs:
            return None, 0
        return sum(t == p for t, p in pairs) / len(pairs), len(pairs)

    def recall(self, label: str) -> float | None:
        if label not in self.labels:
            return None
        return self.accuracy_on({label})[0]


@dataclass
class Comparison:
    old: ModelScores
    new: ModelScores
    counts: dict[str, int]  # images per data class
    tolerance: float  # points

    @property
    def shared(self) -> set[str]:
        return set(self.old.labels) & set(self.new.labels)

    @property
    def old_shared(self) -> float | None:
        return self.old.accuracy_on(self.shared)[0]

    @property
    def new_shared(self) -> float | None:
        return self.new.accuracy_on(self.shared)[0]

    @property
    def worse(self) -> bool:
        old, new = self.old_shared, self.new_shared
        if old is None or new is None:
            return False
        return 100 * (old - new) > self.tolerance

    def table(self) -> str:
        rows = sorted(set(self.old.labels) | set(self.new.labels) | set(self.counts))

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{100 * value:.1f}%"

        first = max([len("overall (shared labels)"), *(len(r) for r in rows)])
        lines = [f"{'class':<{first}}  {'images':>6}  {'old':>7}  {'new':>7}"]
        for label in rows:
            lines.append(
                f"{label:<{first}}  {self.counts.get(label, 0):>6}  "
                f"{pct(self.old.recall(label)):>7}  {pct(self.new.recall(label)):>7}"
            )
        old_own, n_old = self.old.accuracy_on(set(self.old.labels))
        new_own, n_new = self.new.accuracy_on(set(self.new.labels))
        n_shared = self.old.accuracy_on(self.shared)[1]
        lines.append(
            f"{'overall (own labels)':<{first}}  {f'{n_old}/{n_new}':>6}  "
            f"{pct(old_own):>7}  {pct(new_own):>7}"
        )
        lines.append(
            f"{'overall (shared labels)':<{first}}  {n_shared:>6}  "
            f"{pct(self.old_shared):>7}  {pct(self.new_shared):>7}"
        )
        return "\n".join(lines)


def _scores(model_dir: Path, data_specs: list[str], use_cache: bool, threads: int | None):
    manifest = read_manifest(model_dir)
    data: Dataset = load_datasets(
        data_specs, manifest.input_size, use_cache=use_cache, min_classes=1
    )
    predicted = predict_int8(model_dir, data.images, num_threads=threads) if len(data) else []
    labels = list(manifest.labels)
    return (
        ModelScores(
            str(model_dir),
            labels,
            [data.classes[i] for i in data.labels],
            [labels[int(i)] for i in predicted],
        ),
        data,
    )


def compare_models(
    old: Path | str,
    new: Path | str,
    data_specs: list[str],
    *,
    tolerance: float = 0.0,
    use_cache: bool = True,
    num_threads: int | None = None,
) -> Comparison:
    """Score OLD and NEW (model folders: model.tflite + model.json) on every image of
    ``data_specs``."""
    old_dir, new_dir = Path(old).expanduser(), Path(new).expanduser()
    for folder in (old_dir, new_dir):
        if not folder.exists():
            raise DataError(f"model folder not found: {folder}")
    old_scores, data = _scores(old_dir, data_specs, use_cache, num_threads)
    new_scores, _ = _scores(new_dir, data_specs, use_cache, num_threads)
    if not (set(old_scores.labels) & set(new_scores.labels)):
        raise DataError("the two models share no label; there is nothing to compare")
    counts = {c: int(np.sum(data.labels == i)) for i, c in enumerate(data.classes)}
    return Comparison(old_scores, new_scores, counts, tolerance)
