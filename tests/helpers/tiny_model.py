"""A real, tiny int8 TFLite model for tests, trained in seconds on the scene sprites.

Built in a subprocess (``python -m tests.helpers.tiny_model OUT --seed N``) so TensorFlow
never loads into the pytest process next to LiteRT, and cached on disk per seed. The trainer
package's exporter can replace :func:`train_and_export` here without changing the tests:
they only need a model directory with ``model.tflite`` + a matching ``model.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = 1  # bump to invalidate cached models
INPUT_SIZE = 32


def labels() -> list[str]:
    from edge_agent.scenes import ProceduralSprites

    return sorted(ProceduralSprites().labels)


def cached_dir(cache_root: Path, seed: int) -> Path | None:
    out = Path(cache_root) / f"tiny-v{VERSION}-seed{seed}"
    if (out / "model.tflite").exists() and (out / "model.json").exists():
        return out
    return None


def model_dir(cache_root: Path, seed: int) -> Path:
    """A cached tiny model for ``seed`` (built on first use, about 20 s on two cores)."""
    out = Path(cache_root) / f"tiny-v{VERSION}-seed{seed}"
    if cached_dir(cache_root, seed) is not None:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.tiny_model", str(tmp), "--seed", str(seed)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tiny model build failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _dataset(seed: int, per_class: int = 120):
    """Crops of the procedural animals of ``edge_agent.scenes``, cut the way the pipeline
    cuts them, so the tiny model recognises the animals in the generated videos."""
    import tempfile

    import cv2
    import numpy as np

    from edge_agent.scenes import write_sprite_dataset

    rng = np.random.default_rng(seed)
    images, targets = [], []
    with tempfile.TemporaryDirectory() as tmp:
        write_sprite_dataset(tmp, per_class, size=INPUT_SIZE, seed=seed)
        for index, label in enumerate(labels()):
            for path in sorted((Path(tmp) / label).glob("*.png")):
                images.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
                targets.append(index)
    order = rng.permutation(len(images))
    return np.stack(images)[order], np.array(targets)[order]


def train_and_export(out: Path, seed: int = 0, epochs: int = 20) -> Path:
    import numpy as np
    import tensorflow as tf

    from edge_agent.manifest import Manifest, TensorSpec, sha256_file, utc_now_iso, write_manifest

    tf.keras.utils.set_random_seed(seed)
    names = labels()
    x, y = _dataset(seed)
    keras = tf.keras
    model = keras.Sequential(
        [
            keras.Input((INPUT_SIZE, INPUT_SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(names), activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.astype("float32"), y, epochs=epochs, batch_size=32, verbose=0)
    float_accuracy = float(model.evaluate(x.astype("float32"), y, verbose=0)[1])

    def representative():
        for image in x[:100]:
            yield [image[None].astype("float32")]

    saved = out.with_name(out.name + ".savedmodel")
    model.export(str(saved), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    tflite = converter.convert()

    shutil.rmtree(saved, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.tflite"
    path.write_bytes(tflite)
    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outp = interpreter.get_output_details()[0]
    manifest = Manifest(
        labels=names,
        input=TensorSpec(
            shape=[-1, INPUT_SIZE, INPUT_SIZE, 3],
            dtype=np.dtype(inp["dtype"]).name,
            scale=float(inp["quantization"][0]),
            zero_point=int(inp["quantization"][1]),
        ),
        output=TensorSpec(
            shape=[-1, len(names)],
            dtype=np.dtype(outp["dtype"]).name,
            scale=float(outp["quantization"][0]),
            zero_point=int(outp["quantization"][1]),
        ),
        sha256=sha256_file(path),
        arch=f"tiny-test-seed{seed}",
        accuracy={"float": float_accuracy},
        training={"source": "edge_agent.scenes procedural sprites (tests)", "seed": seed},
        created=utc_now_iso(),
        trapcount_version="test",
    )
    write_manifest(manifest, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_and_export(args.out, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
