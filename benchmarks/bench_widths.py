"""What a network's width costs before training it: parameters, multiply-adds, int8 file
size, one-thread int8 latency per crop, and the training speed of ``fit`` on this machine.

For each width of an arch this builds the network, times ``model.fit`` on batches of
random 32x32 images (the arch's own optimizer settings do not matter for speed: SGD), then
converts it to int8 TFLite the way the exporter does and times the edge ``Classifier`` on
one thread, batch 1. The weights get a little noise before conversion: freshly initialised
networks can hold identical weight buffers (airbench's Dirac-initialised convolutions), which
the converter stores once, so an untrained model's file would be smaller than a trained one.

    .venv/bin/python benchmarks/bench_widths.py --arch airbench --widths 32 40 44 48
    .venv/bin/python benchmarks/bench_widths.py --arch resnet --widths 16 24 32

Training throughput uses every core (as ``trapcount-train`` does); latency uses one thread.
Sizes and MACs are exact; the times are one run on a shared machine: compare rows, not runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def train_seconds_per_image(model, batch: int, batches: int) -> float:
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * batches, 32, 32, 3)).astype(np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, len(x)), 10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy"
    )
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # build and trace
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / len(x)


def perturbed(model, scale: float = 1e-3) -> None:
    rng = np.random.default_rng(1)
    model.set_weights(
        [w + scale * rng.standard_normal(w.shape).astype(w.dtype) for w in model.get_weights()]
    )


def int8_file_and_latency(model, repeats: int) -> tuple[int, float]:
    from bench_inference import time_per_image

    from edge_agent.manifest import Manifest, sha256_file, write_manifest
    from edge_agent.vision.classifier import Classifier
    from trainer.export import convert_int8, tensor_specs

    rng = np.random.default_rng(2)
    calibration = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
    calibration[0] = 0
    calibration[1] = 255
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(convert_int8(model, calibration))
        input_spec, output_spec = tensor_specs(folder / "model.tflite")
        labels = [f"class{i}" for i in range(int(model.output_shape[-1]))]
        manifest = Manifest(labels, input_spec, output_spec, sha256_file(folder / "model.tflite"))
        write_manifest(manifest, folder)
        size = (folder / "model.tflite").stat().st_size
        with Classifier(folder, num_threads=1, max_batch=1) as classifier:
            images = rng.integers(0, 256, (100, 32, 32, 3)).astype(np.uint8)
            seconds = time_per_image(classifier.predict_proba, images, 1, repeats)
    return size, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="airbench", choices=("resnet", "airbench"))
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 40, 44, 48])
    parser.add_argument("--batch", type=int, default=512, help="training batch for timing")
    parser.add_argument("--batches", type=int, default=3, help="timed training batches")
    parser.add_argument("--repeats", type=int, default=3, help="latency passes (median)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from trainer.models import count_macs, make_model

    rows = []
    for width in args.widths:
        model = make_model(args.arch, (32, 32, 3), 10, width=width)
        params, macs = int(model.count_params()), count_macs(model)
        train_s = train_seconds_per_image(model, args.batch, args.batches)
        perturbed(model)
        size, latency = int8_file_and_latency(model, args.repeats)
        rows.append((width, params, macs, size, 1000 * latency, train_s * 40000 / 60))
        print(f"# width {width} done", file=sys.stderr)

    print(
        f"| {args.arch} width | params | MACs / image | int8 .tflite bytes | int8 ms / crop "
        "(1 thread) | training s per 1,000 images | est. min per 40k-image epoch |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for width, params, macs, size, ms, epoch_min in rows:
        print(
            f"| {width} | {params:,} | {macs / 1e6:.1f} M | {size:,} | {ms:.3f} "
            f"| {epoch_min * 60 / 40:.2f} | {epoch_min:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
