"""Confidence against accuracy: what ``classifier.confidence_threshold`` buys on a split.

For a model folder and its training data, takes the same validation split the manifest
records, runs the int8 model through ``edge_agent.vision.classifier.Classifier`` (the trap's path)
and prints, per threshold, the share of crops whose top probability reaches it (they get a
label; the rest stay ``unknown``) and how many of those labels are right.

    .venv/bin/python benchmarks/bench_confidence.py models/default \\
        --data ../shared/data/cifar10-train-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.manifest import read_manifest  # noqa: E402
from edge_agent.vision.classifier import Classifier  # noqa: E402
from trainer.data import load_datasets, stratified_split  # noqa: E402
from trainer.evaluate import align_to_labels  # noqa: E402

THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", required=True, action="append", help="the training data")
    args = parser.parse_args(argv)

    manifest = read_manifest(args.model_dir)
    training = manifest.training or {}
    data = load_datasets(args.data, manifest.input_size)
    split = stratified_split(
        data, float(training.get("val_split", 0.2)), int(training.get("split_seed", 0))
    )
    val = align_to_labels(split.val, manifest.labels)
    with Classifier(args.model_dir, max_batch=256) as classifier:
        probs = classifier.predict_proba(val.images)
    top = probs.max(axis=1)
    right = np.argmax(probs, axis=1) == val.labels
    print(f"model {args.model_dir}, {len(val)} validation images, int8")
    print("| threshold | labelled | right among labelled |")
    print("| ---: | ---: | ---: |")
    for threshold in THRESHOLDS:
        kept = top >= threshold
        share = kept.mean()
        precision = right[kept].mean() if kept.any() else float("nan")
        print(f"| {threshold:.1f} | {100 * share:.1f}% | {100 * precision:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
