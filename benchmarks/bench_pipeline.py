"""Frames per second of ``trapcount process`` against plain OpenCV decoding, and peak RSS.

Makes a sample camera-trap clip (``edge_agent.demo.scenes.example_scene`` with the demo's
CIFAR-10 sprites; 640x480 by default, ``--size 1920x1080`` for full HD), then runs, each in
a fresh subprocess so that peak RSS is its own:

- ``decode``: ``cv2.VideoCapture`` reading every frame, nothing else (the floor);
- ``motion``: the pipeline with no classifier (every track labelled ``animal``);
- ``process``: the full pipeline with the int8 model, one interpreter thread, writing
  events to a fresh SQLite file, as ``trapcount process`` does (``service.process_source``),
  with the privacy checks of the default ``privacy.mode`` (``drop``);
- ``no privacy`` (``--no-privacy``): the same with ``privacy.mode = off``, to see what the
  person checks cost;
- ``--config FILE``: the same with a trapcount TOML configuration's sections laid over
  those settings, to measure what a setting buys (a cheaper motion gate, fewer person
  checks) beside what it counts.

Prints fps over the frame loop (model loading and start-up excluded), the ratio to
decoding (the median over repeats of each run against the decoding of its repeat), the
CPU time per frame of all the process's threads (less sensitive to other
work on a shared machine than fps; a thread that decodes ahead adds its CPU time but
overlaps its wall time), each process's peak RSS and what each counting run counted
(``Store.totals``: MaxN summed per label over the clip's events): a faster setting that
counts something else is not the same job done faster.

``--before REV`` runs the same workers on the code of git revision ``REV`` too (checked
out into a temporary worktree), alternating with this tree's run by run, so that a shared
machine's load falls on both alike; every ratio in the table is against the decoding
measured in the same runs.

    .venv/bin/python benchmarks/bench_pipeline.py                 # the shipped model
    .venv/bin/python benchmarks/bench_pipeline.py --model runs/seed --repeats 3
    .venv/bin/python benchmarks/bench_pipeline.py --before HEAD~2 --no-privacy --repeats 5
    .venv/bin/python benchmarks/bench_pipeline.py --size 1920x1080 --seconds 30
    .venv/bin/python benchmarks/bench_pipeline.py --config cheaper.toml
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = {
    "decode": "OpenCV decode only",
    "motion": "motion only",
    "process": "trapcount process",
    "noprivacy": "process, privacy off",
    "config": "process, --config",
}


def make_clip(path: Path, width: int = 640, height: int = 480, seconds: float = 0.0) -> int:
    """The demo's kind of scene at ``width`` x ``height``; ``seconds`` > 0 cuts it short."""
    from edge_agent.demo import scenes, sprites, writers
    from edge_agent.demo.sample import SPRITES

    scene = scenes.example_scene(
        width=width,
        height=height,
        fps=10.0,
        gap_s=20.0,
        seed=3,
        sprites=sprites.FolderSprites(SPRITES),
    )
    if seconds > 0:
        scene.duration_s = min(scene.duration_s, seconds)
    writers.write_video(scene, path, event_gap_s=10.0)
    return scene.frame_count


def laid_over(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values in place of its own, section by section."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = laid_over(merged[key], value)
        else:
            merged[key] = value
    return merged


def worker(
    mode: str, video: Path, model: Path | None, config: Path | None = None
) -> dict[str, Any]:
    """Runs inside the subprocess; returns frames, seconds, peak RSS and what it counted."""
    import cv2

    counted: dict[str, int] = {}  # what a counting run counted
    if mode == "decode":
        capture = cv2.VideoCapture(str(video))
        frames = 0
        started, cpu0 = time.perf_counter(), time.process_time()
        while True:
            ok, _ = capture.read()
            if not ok:
                break
            frames += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    else:
        from edge_agent.config import settings_from_dict
        from edge_agent.counting.pipeline import Pipeline
        from edge_agent.service.batch import process_source
        from edge_agent.service.model import load_classifier
        from edge_agent.store.database import Store

        values: dict = {"source": {"uri": str(video)}, "classifier": {"num_threads": 1}}
        if mode == "noprivacy":
            values["privacy"] = {"mode": "off"}
        if mode == "config" and config is not None:
            values = laid_over(values, tomllib.loads(config.read_text(encoding="utf-8")))
        settings = settings_from_dict(values)
        if mode == "motion":
            from edge_agent.capture.factory import open_source

            pipeline = Pipeline(settings, None)
            started, cpu0 = time.perf_counter(), time.process_time()
            with open_source(settings.source) as source:
                for timestamp, frame in source:
                    pipeline.process(timestamp, frame)
            pipeline.close()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
            frames = pipeline.frames
        else:
            classifier = load_classifier(model, settings.classifier)
            with tempfile.TemporaryDirectory() as tmp:
                store = Store.open(Path(tmp) / "bench.sqlite")
                started, cpu0 = time.perf_counter(), time.process_time()
                result = process_source(settings, store, classifier)
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
                counted = store.totals()
                store.close()
            frames = result.frames
    return {
        "frames": frames,
        "seconds": seconds,
        "cpu_ms": 1000 * cpu / max(frames, 1),
        "peak_rss_mib": peak_rss_kib() / 1024,
        "counted": counted,
    }


def peak_rss_kib() -> int:
    """This process's peak resident set size. Linux's ``VmHWM``, which starts afresh at
    ``exec``: ``ru_maxrss`` would carry in the peak of the parent that rendered the clip."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_worker(
    mode: str, video: Path, model: Path | None, code: Path, config: Path | None = None
) -> dict[str, Any]:
    """One worker in a fresh process, importing ``edge_agent`` from the tree ``code``."""
    command = [sys.executable, __file__, "--worker", mode, "--video", str(video)]
    command += ["--code", str(code)]
    if model is not None:
        command += ["--model", str(model)]
    if config is not None:
        command += ["--config", str(config)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(code))
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=code)
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def worktree(rev: str, where: Path):
    """``rev`` checked out (detached) at ``where``; removed afterwards."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), rev],
        check=True,
    )
    try:
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False
        )
        shutil.rmtree(where, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="640x480", help="clip size, WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=0.0, help="cut the clip (0: 65 s)")
    parser.add_argument("--no-privacy", action="store_true", help="also process, privacy off")
    parser.add_argument("--before", metavar="REV", help="also measure git revision REV")
    parser.add_argument(
        "--config", type=Path, help="also process with this TOML laid over the settings"
    )
    parser.add_argument("--worker", choices=list(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        if args.code is not None:
            sys.path.insert(0, str(args.code))
        print(json.dumps(worker(args.worker, args.video, args.model, args.config)))
        return 0

    from edge_agent.service.model import default_model_dir

    model = (args.model or default_model_dir()).resolve()
    width, height = (int(v) for v in args.size.lower().split("x"))
    modes = ["decode", "motion", "process"] + (["noprivacy"] if args.no_privacy else [])
    config = None
    if args.config is not None:
        config = args.config.resolve()
        tomllib.loads(config.read_text(encoding="utf-8"))  # a bad file fails here, once
        modes.append("config")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        video = Path(tmp) / "bench.mp4"
        frames = make_clip(video, width, height, args.seconds)
        trees = [("now", ROOT)]
        if args.before:
            label = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            trees.insert(0, (label, stack.enter_context(worktree(args.before, Path(tmp) / "b"))))
        print(
            f"clip: {width}x{height}, {frames} frames at 10 fps; model {model}; "
            f"{args.repeats} repeats; load average {os.getloadavg()[0]:.1f}"
        )
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(args.repeats):
            for tree, code in trees:
                for mode in modes:
                    done = run_worker(mode, video, model, code, config)
                    runs.setdefault((tree, mode), []).append(done)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for tree, _code in trees:
        rows = {}
        decodes = [r["frames"] / r["seconds"] for r in runs[tree, "decode"]]
        for mode in modes:
            done = runs[tree, mode]
            fps = [r["frames"] / r["seconds"] for r in done]
            # Each run against the decoding of the same repeat: load that changes between
            # repeats falls on both.
            ratio = statistics.median(f / d for f, d in zip(fps, decodes, strict=True))
            cpu = statistics.median(r["cpu_ms"] for r in done)
            rss = max(r["peak_rss_mib"] for r in done)
            # Every repeat counts the same clip: differing counts would show as several.
            counts = {
                ", ".join(f"{k} {v}" for k, v in r["counted"].items())
                for r in done
                if r.get("counted")
            }
            rows[mode] = (statistics.median(fps), ratio, cpu, rss, " / ".join(sorted(counts)))
        print(f"\n{tree}:\n")
        print(
            f"| {'run':<20} | {'fps':>7} | {'vs decode':>9} | {'CPU ms/frame':>12} "
            f"| {'peak RSS MiB':>12} | counted |"
        )
        print(f"| {'-' * 20} | {'-' * 6}: | {'-' * 8}: | {'-' * 11}: | {'-' * 11}: | --- |")
        for mode, (fps, ratio, cpu, rss, counts) in rows.items():
            print(
                f"| {NAMES[mode]:<20} | {fps:7.1f} | {ratio:9.2f} | {cpu:12.2f} "
                f"| {rss:12.0f} | {counts or '-'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
