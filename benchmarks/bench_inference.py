"""Inference latency per image: int8 TFLite (the trap's path) vs the Keras float model.

For a model folder (model.keras + model.tflite + model.json, as ``trapcount-train`` writes
it) this times, on the same images and with one CPU thread each:

- ``tflite int8``: ``edge_agent.vision.classifier.Classifier.predict_proba`` (quantize, invoke,
  dequantize), batch 1 and batch 16;
- ``keras predict``: ``model.predict(x, verbose=0)`` (per call: builds a data adapter, the
  way a naive script would call it), batch 1 and batch 16;
- ``keras call``: ``model(x, training=False)``, batch 1 and batch 16.

Prints a table with milliseconds per image (median of the repeats) and each row's ratio to
the int8 row of the same batch size, plus the top-1 agreement of int8 with float.

    .venv/bin/python benchmarks/bench_inference.py runs/seed
    .venv/bin/python benchmarks/bench_inference.py runs/seed --images 200 --repeats 5

Images: a random sample of the CIFAR-10 JPEG archive in ../shared/data when present,
else synthetic noise at the model's input size (latency does not depend on content).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# One thread everywhere, set before TensorFlow starts its thread pools.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.vision.classifier import Classifier  # noqa: E402

CIFAR_JPEG = ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


def load_images(count: int, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A random sample over all classes (the decoded archive is cached after the first run)."""
    rng = np.random.default_rng(0)
    if CIFAR_JPEG.is_file():
        from trainer.data import load_datasets

        data = load_datasets([str(CIFAR_JPEG)], size)
        index = rng.choice(len(data), size=min(count, len(data)), replace=False)
        return data.images[index], f"{len(index)} CIFAR-10 JPEGs"
    return rng.integers(0, 256, (count, *size, 3), dtype=np.uint8), f"{count} noise images"


def time_per_image(run, images: np.ndarray, batch: int, repeats: int) -> float:
    """Median over ``repeats`` passes of seconds per image, after one warm-up pass."""
    batches = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
    for part in batches[:3]:
        run(part)
    results = []
    for _ in range(repeats):
        started = time.perf_counter()
        for part in batches:
            run(part)
        results.append((time.perf_counter() - started) / (len(batches) * batch))
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="folder with model.keras and model.tflite")
    parser.add_argument("--images", type=int, default=256, help="images per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    classifier = Classifier(args.model_dir, num_threads=1, max_batch=16)
    model = keras.models.load_model(args.model_dir / "model.keras", compile=False)
    images, what = load_images(args.images, classifier.input_size)
    floats = images.astype(np.float32)

    int8_pred = np.argmax(classifier.predict_proba(images), axis=1)
    float_pred = np.argmax(model.predict(floats, batch_size=64, verbose=0), axis=1)
    agreement = float(np.mean(int8_pred == float_pred))

    runners = {
        "tflite int8 (edge Classifier)": lambda x: classifier.predict_proba(x),
        "keras float predict()": lambda x: model.predict(x.astype(np.float32), verbose=0),
        "keras float model(x)": lambda x: model(x.astype(np.float32), training=False),
    }
    rows = []
    for batch in (1, 16):
        base = None
        for name, run in runners.items():
            seconds = time_per_image(run, images, batch, args.repeats)
            base = base or seconds
            rows.append((name, batch, 1000 * seconds, seconds / base))

    print(f"model   {args.model_dir} ({classifier.manifest.arch}, {classifier.backend})")
    print(f"images  {what}, {classifier.input_size[0]}x{classifier.input_size[1]}, 1 thread")
    print(f"top-1 agreement int8 vs float: {100 * agreement:.1f}%")
    print()
    print(f"| {'runtime':<30} | batch | ms / image | x int8 |")
    print(f"|{'-' * 32}|------:|-----------:|-------:|")
    for name, batch, ms, ratio in rows:
        print(f"| {name:<30} | {batch:>5} | {ms:>10.3f} | {ratio:>6.1f} |")
    classifier.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
