"""Test-time augmentation: validation accuracy when each crop is also classified mirrored
(and shifted), against the extra inference it costs on the trap.

For each model folder this prints, for the Keras float model and the int8 TFLite model
(through the edge agent's ``Classifier``, the trap's path), the accuracy on the run's
validation split with:

- ``none``: one view, what the trap does today;
- ``flip``: the crop and its mirror image, probabilities averaged (2 views);
- ``flip+shift``: airbench's level-2 TTA: half the weight on the crop and its mirror, half
  on the mirrored pair of the crop shifted one pixel up-left and one pixel down-right,
  reflect-padded (6 views).

Airbench averages logits; the exported models end in a softmax, so probabilities are
averaged here. The cost column is the number of views: per-crop latency scales with it
(``bench_models.py`` gives the one-view latency).

    .venv/bin/python benchmarks/bench_tta.py models/default runs/airbench44-e20 \\
        --data ../shared/data/cifar10-train-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def mirrored(images: np.ndarray) -> np.ndarray:
    return images[:, :, ::-1, :]


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Content moved by (dy, dx) pixels, the uncovered border filled by reflection."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    top, left = pad - dy, pad - dx
    return padded[:, top : top + h, left : left + w, :]


def tta_probabilities(predict: Predict, images: np.ndarray) -> dict[str, np.ndarray]:
    """Averaged class probabilities for each TTA level (see the module docstring)."""
    plain = predict(images)
    flip = 0.5 * (plain + predict(mirrored(images)))
    shifts = []
    for dy, dx in ((1, 1), (-1, -1)):
        moved = shifted(images, dy, dx)
        shifts.append(0.5 * (predict(moved) + predict(mirrored(moved))))
    return {"none": plain, "flip": flip, "flip+shift": 0.5 * flip + 0.25 * sum(shifts)}


VIEWS = {"none": 1, "flip": 2, "flip+shift": 6}


def measure(model_dir: Path, data: list[str], threads: int) -> list[dict]:
    from edge_agent.vision.classifier import Classifier
    from trainer.evaluate import evaluation_set
    from trainer.run_folder import load_keras_model

    _, val, where = evaluation_set(model_dir, data)
    print(f"# {model_dir}: {where}, {len(val)} images", file=sys.stderr)
    model = load_keras_model(model_dir / "model.keras")
    classifier = Classifier(model_dir, num_threads=threads, max_batch=256)

    def float_predict(x: np.ndarray) -> np.ndarray:
        return model.predict(x.astype(np.float32), batch_size=256, verbose=0)

    rows = []
    runtimes = (("keras float", float_predict), ("tflite int8", classifier.predict_proba))
    for runtime, predict in runtimes:
        for level, probs in tta_probabilities(predict, val.images).items():
            accuracy = float(np.mean(np.argmax(probs, axis=1) == val.labels))
            rows.append(dict(model=str(model_dir), runtime=runtime, tta=level, accuracy=accuracy))
    classifier.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", help="trained model folders")
    parser.add_argument("--data", required=True, action="append", help="the training data")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    rows = []
    for model_dir in args.model_dirs:
        rows.extend(measure(model_dir, args.data, args.threads))
    print("| model | runtime | TTA | views (x cost) | val acc | vs none |")
    print("|---|---|---|---:|---:|---:|")
    baseline = {}
    for r in rows:
        key = (r["model"], r["runtime"])
        baseline.setdefault(key, r["accuracy"])
        gain = 100 * (r["accuracy"] - baseline[key])
        print(
            f"| {r['model']} | {r['runtime']} | {r['tta']} | {VIEWS[r['tta']]} "
            f"| {100 * r['accuracy']:.2f}% | {gain:+.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
