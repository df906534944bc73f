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
``model.keras`` on the same images, the crops lost to ties (the true label shares the top
uint8 probability with another and loses the argmax), and latency per crop on one thread,
batch 1 (median of the repeats, on 200 validation crops).

``--calibration-images N`` calibrates the int8 ranges on N training images instead of the
run's own number. ``--layers`` also runs TensorFlow's quantization debugger on the first
and last variant and prints each layer's RMS error in quantization steps of its output
(rounding alone gives about 0.29).

    .venv/bin/python benchmarks/bench_int8_graph.py models/default \\
        --data ../shared/data/cifar10-train-jpeg.tar.gz --layers
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

from edge_agent.vision.classifier import Classifier, load_interpreter_class
from edge_agent.manifest import sha256_file, write_manifest


def op_summary(tflite: Path) -> str:
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(tflite))
    interpreter.allocate_tensors()
    counts = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    counts.pop("DELEGATE", None)  # XNNPACK's wrappers, not graph ops
    return f"{sum(counts.values())} ({counts['MUL']} MUL, {counts['ADD']} ADD)"


def tie_losses(probabilities: np.ndarray, labels: np.ndarray) -> int:
    """Crops whose true label ties for the top probability but is not the argmax."""
    top = probabilities.max(axis=1, keepdims=True)
    tied = (probabilities == top).sum(axis=1) > 1
    truth_on_top = probabilities[np.arange(len(labels)), labels] == top[:, 0]
    return int(np.sum(tied & truth_on_top & (probabilities.argmax(axis=1) != labels)))


def layer_errors(graph, calibration: np.ndarray, images: np.ndarray) -> list[tuple[str, float]]:
    """(op and layer, RMS error / output scale) per quantized op, from the TFLite
    quantization debugger comparing each int8 op with its float counterpart on ``images``."""
    import csv
    import io

    import tensorflow as tf

    def feed(batch):
        def gen():
            for image in batch:
                yield [image[None].astype(np.float32)]

        return gen

    with tempfile.TemporaryDirectory(prefix="trapcount-qdebug-") as tmp:
        graph.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = feed(calibration)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=feed(images)
        )
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        error = np.sqrt(float(row["mean_squared_error"])) / scale if scale else 0.0
        rows.append((f"{row['op_name']} {row['tensor_name'][-40:]}", float(error)))
    return rows


def measure(
    model_dir: Path, data: list[str], repeats: int, calibration_count: int | None, layers: bool
) -> list[dict]:
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
    count = calibration_count or int(training.get("calibration_images", 256))
    calibration = calibration_images(train, count, 0)
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
                    ties=tie_losses(probabilities, val.labels),
                    ms=1000 * seconds,
                )
            )
    print(
        f"# {model_dir}: float {100 * float_acc:.2f}% on {len(val)} images; "
        f"int8 calibrated on {len(calibration)} training images",
        file=sys.stderr,
    )
    if layers:
        names = list(variants)
        for name in (names[0], names[-1]):
            print(f"\n{model_dir}, {name}: RMS error of each int8 op, in steps of its output")
            for op, error in layer_errors(variants[name], calibration, val.images[:256]):
                print(f"  {error:6.3f}  {op}")
        print()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", help="trained model folders")
    parser.add_argument("--data", required=True, action="append", help="the training data")
    parser.add_argument("--repeats", type=int, default=5, help="timing passes (median)")
    parser.add_argument("--calibration-images", type=int, help="int8 calibration set size")
    parser.add_argument("--layers", action="store_true", help="per-layer quantization error")
    args = parser.parse_args(argv)

    rows = []
    for model_dir in args.model_dirs:
        rows.extend(
            measure(model_dir, args.data, args.repeats, args.calibration_images, args.layers)
        )
    print(
        "| model | int8 graph | ops | tflite bytes | int8 val acc | drop vs float "
        "| lost to ties | ms / crop |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['graph']} | {r['ops']} | {r['bytes']:,} "
            f"| {100 * r['int8']:.2f}% | {r['drop']:.2f} | {r['ties']} | {r['ms']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
