"""Frames per second of ``trapcount process`` against plain OpenCV decoding, and peak RSS.

Makes a 640x480 sample camera-trap clip (``edge_agent.demo.scenes.example_scene`` with the demo's
CIFAR-10 sprites), then runs, each in a fresh subprocess so that peak RSS is its own:

- ``decode``: ``cv2.VideoCapture`` reading every frame, nothing else (the floor);
- ``motion only``: the pipeline with no classifier (every track labelled ``animal``);
- ``process``: the full pipeline with the int8 model, one interpreter thread, writing
  events to a fresh SQLite file, as ``trapcount process`` does (``service.process_source``).

Prints fps over the frame loop (model loading and start-up excluded), the ratio to
decoding, and each process's peak RSS.

    .venv/bin/python benchmarks/bench_pipeline.py                 # the shipped model
    .venv/bin/python benchmarks/bench_pipeline.py --model runs/seed --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_clip(path: Path) -> int:
    from edge_agent.demo import scenes, sprites, writers
    from edge_agent.demo.sample import SPRITES

    scene = scenes.example_scene(
        width=640, height=480, fps=10.0, gap_s=20.0, seed=3, sprites=sprites.FolderSprites(SPRITES)
    )
    writers.write_video(scene, path, event_gap_s=10.0)
    return scene.frame_count


def worker(mode: str, video: Path, model: Path | None) -> dict[str, float]:
    """Runs inside the subprocess; returns frames, seconds and peak RSS."""
    import cv2

    if mode == "decode":
        capture = cv2.VideoCapture(str(video))
        frames = 0
        started = time.perf_counter()
        while True:
            ok, _ = capture.read()
            if not ok:
                break
            frames += 1
        seconds = time.perf_counter() - started
    else:
        from edge_agent.config import settings_from_dict
        from edge_agent.counting.pipeline import Pipeline
        from edge_agent.service.batch import process_source
        from edge_agent.service.model import load_classifier
        from edge_agent.store.database import Store

        settings = settings_from_dict(
            {"source": {"uri": str(video)}, "classifier": {"num_threads": 1}}
        )
        if mode == "motion":
            from edge_agent.capture.factory import open_source

            pipeline = Pipeline(settings, None)
            started = time.perf_counter()
            with open_source(settings.source) as source:
                for timestamp, frame in source:
                    pipeline.process(timestamp, frame)
            pipeline.close()
            seconds = time.perf_counter() - started
            frames = pipeline.frames
        else:
            classifier = load_classifier(model, settings.classifier)
            with tempfile.TemporaryDirectory() as tmp:
                store = Store.open(Path(tmp) / "bench.sqlite")
                started = time.perf_counter()
                result = process_source(settings, store, classifier)
                seconds = time.perf_counter() - started
                store.close()
            frames = result.frames
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames": frames, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def run_worker(mode: str, video: Path, model: Path | None) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", mode, "--video", str(video)]
    if model is not None:
        command += ["--model", str(model)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["decode", "motion", "process"], help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.video, args.model)))
        return 0

    from edge_agent.service.model import default_model_dir

    model = (args.model or default_model_dir()).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        frames = make_clip(video)
        print(f"clip: 640x480, {frames} frames at 10 fps; model {model}; {args.repeats} repeats")
        rows = {}
        for mode in ("decode", "motion", "process"):
            runs = [run_worker(mode, video, model) for _ in range(args.repeats)]
            fps = statistics.median(r["frames"] / r["seconds"] for r in runs)
            rss = max(r["peak_rss_mib"] for r in runs)
            rows[mode] = (fps, rss)
    decode_fps = rows["decode"][0]
    names = {
        "decode": "OpenCV decode only",
        "motion": "motion only",
        "process": "trapcount process",
    }
    print(f"\n| {'run':<20} | {'fps':>7} | {'vs decode':>9} | {'peak RSS MiB':>12} |")
    print(f"| {'-' * 20} | {'-' * 6}: | {'-' * 8}: | {'-' * 11}: |")
    for mode, (fps, rss) in rows.items():
        print(f"| {names[mode]:<20} | {fps:7.1f} | {fps / decode_fps:9.2f} | {rss:12.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
