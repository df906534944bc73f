"""One table for several trained models: accuracy, size, cost and speed, float and int8.

For each model folder (as ``trapcount-train`` writes it: model.keras, model.tflite,
model.json, metrics.json) this prints two rows, the Keras float model and the int8 TFLite
model, with:

- validation accuracy: from the folder's metrics.json (measured by the export on the
  run's validation split, int8 through ``edge_agent.vision.classifier``), or recomputed on the
  same split with ``--data ARCHIVE`` (slower: decodes and predicts 10,000 images); with
  ``--val-split F`` too, every model on the same fraction F of the seeded split, for models
  that held out different fractions (F at most the smallest of them);
- parameters and multiply-adds per crop (``trainer.models.count_macs``, times two for a
  model exported with ``--tta flip``, whose float row then runs both views too);
- file size: the float model saved as .keras without optimizer state, and model.tflite;
- latency per crop, one thread, batch 1, on the same crops: Keras ``model.predict`` for
  float (what a script calling Keras would do), ``Classifier.predict_proba`` for int8
  (quantize, invoke, dequantize: the trap's path), median of the repeats;
- speed ratio: float predict time over the int8 time, measured in this one run;
- the Raspberry Pi 4 estimate: int8 multiply-adds over 3 G MAC/s, an assumed rate for
  XNNPACK's int8 convolutions on one Cortex-A72 core at 1.5 GHz (128-bit NEON without
  dot-product instructions: about 2 MACs per cycle), plus 0.1 ms per call; an estimate from
  the operation count, not a measurement.

    .venv/bin/python benchmarks/bench_models.py runs/seed models/default
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# First: importing it pins every thread pool to one thread before TensorFlow starts.
from bench_inference import load_images, time_per_image  # noqa: I001

import numpy as np

from edge_agent.vision.classifier import Classifier

PI4_INT8_MACS_PER_S = 3.0e9
PI4_CALL_OVERHEAD_S = 1e-4


def pi4_estimate_ms(macs: int) -> float:
    return 1000 * (macs / PI4_INT8_MACS_PER_S + PI4_CALL_OVERHEAD_S)


def float_file_bytes(model) -> int:
    """Size of the float model as a .keras file without optimizer state (a run's own
    model.keras also holds the optimizer's slots: 8x the weights for the seed's RMSprop)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.stat().st_size


def accuracies(
    model_dir: Path, data: str | None, val_split: float | None = None
) -> tuple[float, float, str]:
    if data:
        from trainer.evaluate import evaluate_model_dir

        result = evaluate_model_dir(model_dir, [data], split="val", val_split=val_split)
        return result["float_accuracy"], result["int8_accuracy"], result["split"]
    metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    return metrics["float_accuracy"], metrics["int8_accuracy"], "metrics.json"


def measure(
    model_dir: Path,
    images_count: int,
    repeats: int,
    data: str | None,
    val_split: float | None = None,
) -> list[dict]:
    import keras

    from trainer.calibrate import logit_model
    from trainer.models import count_macs
    from trainer.tta import classifier_head, views

    classifier = Classifier(model_dir, num_threads=1, max_batch=1)
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    images, what = load_images(images_count, classifier.input_size)
    float_acc, int8_acc, source = accuracies(model_dir, data, val_split)
    tta = classifier.manifest.tta
    params, macs = int(model.count_params()), count_macs(model) * views(tta)
    if tta != "none":  # the float model the same way as the .tflite: both views
        model = classifier_head(logit_model(model), tta)

    def float_predict(x):
        return model.predict(x.astype(np.float32), verbose=0)

    float_s = time_per_image(float_predict, images, 1, repeats)
    int8_s = time_per_image(classifier.predict_proba, images, 1, repeats)
    name = model_dir.name if model_dir.name != "default" else "models/default"
    arch = classifier.manifest.arch + (f" + {tta} TTA" if tta != "none" else "")
    common = dict(model=name, arch=arch, params=params, macs=macs)
    rows = [
        dict(
            common,
            runtime="keras float",
            accuracy=float_acc,
            bytes=float_file_bytes(model),
            ms=1000 * float_s,
            ratio=1.0,
            pi4="",
        ),
        dict(
            common,
            runtime="tflite int8",
            accuracy=int8_acc,
            bytes=(model_dir / "model.tflite").stat().st_size,
            ms=1000 * int8_s,
            ratio=float_s / int8_s,
            pi4=f"{pi4_estimate_ms(macs):.1f}",
        ),
    ]
    classifier.close()
    print(f"# {model_dir}: accuracy from {source}; latency on {what}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", help="trained model folders")
    parser.add_argument("--images", type=int, default=200, help="crops per timing pass")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes (median)")
    parser.add_argument("--data", help="recompute accuracy on the run's split of this data")
    parser.add_argument(
        "--val-split",
        type=float,
        help="with --data: every model on this fraction of the seeded split (at most the "
        "smallest fraction any of them held out), so all rows count the same images",
    )
    args = parser.parse_args(argv)
    if args.val_split is not None and not args.data:
        parser.error("--val-split needs --data")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    rows = []
    for model_dir in args.model_dirs:
        rows.extend(measure(model_dir, args.images, args.repeats, args.data, args.val_split))

    header = (
        "| model | arch | runtime | val acc | params | MACs / image | file bytes "
        "| ms / crop (1 thread) | x faster than float predict | Pi 4 est. ms |"
    )
    print(header)
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['arch']} | {r['runtime']} | {100 * r['accuracy']:.2f}% "
            f"| {r['params']:,} | {r['macs'] / 1e6:.1f} M | {r['bytes']:,} | {r['ms']:.3f} "
            f"| {r['ratio']:.1f} | {r['pi4']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
