"""What the export's int8 graph rewrites (``trainer.int8_graph``) buy: int8 accuracy, ops
and latency of one trained model converted three ways.

For each model folder this converts its ``model.keras`` (with the temperature its manifest
records, as the export does) to int8 TFLite:

- ``as trained``: the graph as it is, the way exports before the rewrites converted it;
- ``fold``: conv -> max-pool -> BatchNorm -> bias folded into the convolution;
- ``fold + snap``: also the whitening kernel snapped to its int8 grid with the mean-patch
  bias correction (what ``trapcount-train`` exports now).

and prints, per variant: the int8 ops in the graph, validation accuracy through the edge
``Classifier`` (the run's split, recomputed from ``--data``), the drop against the float
``model.keras`` on the same images, and latency per crop on one thread, batch 1 (median of
the repeats, on 200 validation crops).

    .venv/bin/python benchmarks/bench_int8_graph.py models/default \\
        --data ../shared/data/cifar10-train-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# First: importing it pins every thread pool to one thread before TensorFlow starts.
from bench_inference import time_per_image  # noqa: I001

import numpy as np

from edge_agent.classifier import Classifier, load_interpreter_class
from edge_agent.manifest import sha256_file, write_manifest


def op_summary(tflite: Path) -> str:
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(tflite))
    interpreter.allocate_tensors()
    counts = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    counts.pop("DELEGATE", None)  # XNNPACK's wrappers, not graph ops
    return f"{sum(counts.values())} ({counts['MUL']} MUL, {counts['ADD']} ADD)"


def measure(model_dir: Path, data: list[str], repeats: int) -> list[dict]:
    import keras

    from trainer import calibrate
    from trainer.data import calibration_images, load_datasets, stratified_split
    from trainer.evaluate import evaluation_set, int8_probabilities, predict_float
    from trainer.export import convert_int8
    from trainer.int8_graph import fold_pooled_batchnorm, int8_ready

    manifest, val, _ = evaluation_set(model_dir, data, split="val")
    training = manifest.training or {}
    everything = load_datasets(data, manifest.input_size, min_classes=1)
    train = stratified_split(
        everything, float(training.get("val_split", 0.2)), int(training.get("split_seed", 0))
    ).train
    calibration = calibration_images(train, int(training.get("calibration_images", 256)), 0)
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    float_acc = float(np.mean(predict_float(model, val.images) == val.labels))
    temperature = float((manifest.confidence or {}).get("temperature", 1.0))
    deployed = calibrate.with_temperature(model, temperature)
    variants = {
        "as trained": deployed,
        "fold": fold_pooled_batchnorm(deployed)[0],
        "fold + snap": int8_ready(deployed, calibration)[0],
    }
    rows = []
    for name, graph in variants.items():
        with tempfile.TemporaryDirectory(prefix="trapcount-int8-graph-") as tmp:
            out = Path(tmp)
            (out / "model.tflite").write_bytes(convert_int8(graph, calibration))
            manifest.sha256 = sha256_file(out / "model.tflite")
            write_manifest(manifest, out)
            probabilities = int8_probabilities(out, val.images)
            accuracy = float(np.mean(probabilities.argmax(axis=1) == val.labels))
            classifier = Classifier(out, num_threads=1, max_batch=1)
            seconds = time_per_image(classifier.predict_proba, val.images[:200], 1, repeats)
            classifier.close()
            rows.append(
                dict(
                    model=str(model_dir),
                    graph=name,
                    ops=op_summary(out / "model.tflite"),
                    bytes=(out / "model.tflite").stat().st_size,
                    int8=accuracy,
                    drop=100 * (float_acc - accuracy),
                    ms=1000 * seconds,
                )
            )
    print(f"# {model_dir}: float {100 * float_acc:.2f}% on {len(val)} images", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", help="trained model folders")
    parser.add_argument("--data", required=True, action="append", help="the training data")
    parser.add_argument("--repeats", type=int, default=5, help="timing passes (median)")
    args = parser.parse_args(argv)

    rows = []
    for model_dir in args.model_dirs:
        rows.extend(measure(model_dir, args.data, args.repeats))
    print("| model | int8 graph | ops | tflite bytes | int8 val acc | drop vs float | ms / crop |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['graph']} | {r['ops']} | {r['bytes']:,} "
            f"| {100 * r['int8']:.2f}% | {r['drop']:.2f} | {r['ms']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
