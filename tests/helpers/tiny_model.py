"""A real, tiny int8 TFLite model for tests, trained in seconds on the scene sprites.

Built in a subprocess (``python -m tests.helpers.tiny_model OUT --seed N``) so TensorFlow
never loads into the pytest process next to LiteRT, and cached on disk per seed. The model
is the trainer's own export (``trainer.run.train_and_export``), so the tests run the same
contract a trap gets: a directory with ``model.tflite`` + a matching ``model.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = 2  # bump to invalidate cached models
INPUT_SIZE = 32


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


def train_and_export(out: Path, seed: int = 0, epochs: int = 8) -> Path:
    """The trainer's own ``tiny`` recipe on crops of the procedural animals of
    ``edge_agent.demo.scenes``, cut the way the pipeline cuts them, so the model recognises the
    animals in the generated videos (the same recipe as the ``sprite_model`` fixture)."""
    import tempfile

    from edge_agent.demo.writers import write_sprite_dataset
    from trainer.run import train_and_export as train

    with tempfile.TemporaryDirectory() as tmp:
        write_sprite_dataset(Path(tmp) / "crops", per_class=150, size=INPUT_SIZE, seed=seed)
        return train(
            data=[Path(tmp) / "crops"],
            out=out,
            arch="tiny",
            epochs=epochs,
            seed=seed,
            max_quant_drop=100.0,
            use_cache=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_and_export(args.out, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
