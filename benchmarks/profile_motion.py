"""Where the motion gate spends its time: cProfile over ``Pipeline(settings, None).process``
(no classifier, the defaults) on the frames of ``bench_pipeline.make_clip``'s 640x480 clip,
decoded beforehand so that decoding is not in the profile. Run with one OpenMP thread as
the table in docs/benchmarks.md was:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_motion.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_motion.py --size 1920x1080 --top 25
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_pipeline

from edge_agent.capture.factory import open_source
from edge_agent.config import settings_from_dict
from edge_agent.counting.pipeline import Pipeline


def decoding_seconds(clip: Path) -> float:
    """Seconds ``cv2.VideoCapture`` takes to read every frame (bench_pipeline's floor)."""
    capture = cv2.VideoCapture(str(clip))
    started = time.perf_counter()
    while capture.read()[0]:
        pass
    capture.release()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--top", type=int, default=18, help="functions shown")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        bench_pipeline.make_clip(clip, width, height)
        decode_s = min(decoding_seconds(clip) for _ in range(3))  # the fastest of three
        settings = settings_from_dict({"source": {"uri": str(clip)}})
        with open_source(settings.source) as source:
            frames = list(source)
    pipeline = Pipeline(settings, None)
    profile = cProfile.Profile()
    profile.enable()
    for timestamp, frame in frames:
        pipeline.process(timestamp, frame)
    profile.disable()
    pipeline.close()
    stats = pstats.Stats(profile)
    mog2 = sum(  # its own time: (calls, primitive calls, total time, cumulative, callers)
        row[2] for (_, _, name), row in stats.stats.items() if "MOG2' objects" in name
    )
    n = len(frames)
    budget_ms = 4000 * decode_s / n
    print(f"{n} frames of {args.size}")
    print(f"plain decoding: {n / decode_s:.0f} fps; 0.25x of it: {budget_ms:.2f} ms a frame")
    print(f"MOG2 apply: {1000 * mog2 / n:.2f} ms a frame (profiled)")
    print(f"the whole motion gate: {1000 * stats.total_tt / n:.2f} ms a frame (profiled)")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
