"""Resident memory a model costs: each model folder loaded in a fresh subprocess, one batch
of 16 colour and one of 16 grey 32 x 32 crops classified, and the process's resident size
(``VmRSS``) after that minus before the model was built (the interpreter module and numpy
already imported). A model with a grey companion holds two interpreters.

    .venv/bin/python benchmarks/bench_model_memory.py models/default
    .venv/bin/python benchmarks/bench_model_memory.py --colour-alone models/default

``--colour-alone DIR``: also DIR's colour network without its companion (a temporary
folder with its ``model.tflite`` and a manifest without the ``grey`` section).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_WORKER = """
import sys
import numpy as np
import edge_agent.vision.interpreter  # noqa: F401 - the interpreter module, before measuring
from edge_agent.vision.classifier import Classifier

def rss_mib():
    status = open("/proc/self/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024

before = rss_mib()
classifier = Classifier(sys.argv[1])
crops = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
classifier.predict_proba(crops)
classifier.predict_proba(np.repeat(crops[..., :1], 3, axis=-1))
print(f"{rss_mib() - before:.1f} {classifier.manifest.version} {classifier.has_grey_companion}")
"""


def measure(model: Path) -> tuple[float, str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    mib, version, companion = done.stdout.split()
    return float(mib), version, companion == "True"


def colour_alone(model: Path, into: Path) -> Path:
    manifest = json.loads((model / "model.json").read_text(encoding="utf-8"))
    manifest["grey"] = {}
    into.mkdir(parents=True, exist_ok=True)
    (into / "model.tflite").write_bytes((model / "model.tflite").read_bytes())
    (into / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model folders")
    parser.add_argument("--colour-alone", type=Path, help="a paired model's colour network too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        models = [(str(m), m) for m in args.models]
        if args.colour_alone is not None:
            alone = colour_alone(args.colour_alone, Path(tmp) / "colour-alone")
            models.append((f"{args.colour_alone} without its companion", alone))
            if args.colour_alone not in args.models:
                models.append((str(args.colour_alone), args.colour_alone))
        print("| model | version | grey companion | MiB resident |")
        print("| --- | --- | --- | ---: |")
        for name, folder in models:
            mib, version, companion = measure(folder)
            print(f"| {name} | {version} | {'yes' if companion else 'no'} | {mib:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
