"""What exposure matching (``edge_agent.vision.exposure``) costs a burst: a generated
burst of photos, half of them with their exposure stepped, located by the burst localiser,
timed whole and in ``matched_exposure`` alone, in one run. Prints a table:

    .venv/bin/python benchmarks/bench_exposure.py
    .venv/bin/python benchmarks/bench_exposure.py --size 4000x3000 --photos 10
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_agent.config import MotionSettings
from edge_agent.demo import scenes
from edge_agent.text import format_table
from edge_agent.vision import bursts, exposure


def burst(size: tuple[int, int], photos: int) -> list[np.ndarray]:
    """A deer walking across ``photos`` photos a second apart, the second half brighter."""
    walk = scenes.crossing("deer", 0.0, float(photos), seed=1)
    scene = scenes.Scene(duration_s=photos + 1, walks=walk, seed=3)
    frames = [f for _, f in scene.frames([0.5 + i for i in range(photos)])]
    frames = [cv2.resize(f, size) for f in frames]
    step = photos // 2
    return [
        f if i < step else np.clip(f * 1.1 + 15, 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1600x1200", help="WIDTHxHEIGHT of the photos")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = burst((width, height), args.photos)
    spent = [0.0]
    fit = exposure.matched_exposure

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return fit(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    bursts.matched_exposure = timed
    start = datetime(2024, 6, 1, tzinfo=UTC)
    rows = []
    for repeat in range(args.repeats):
        spent[0] = 0.0
        localiser = bursts.BurstLocaliser(MotionSettings(), 10.0)
        t0 = time.perf_counter()
        located = []
        for i, frame in enumerate(frames):
            located += list(localiser.locate(start + timedelta(seconds=i), frame, []))
        located += list(localiser.flush())
        whole = time.perf_counter() - t0
        found = sum(bool(x.candidates) for x in located)
        per_photo = [whole / args.photos * 1000, spent[0] / args.photos * 1000]
        rows.append(
            [
                repeat + 1,
                f"{per_photo[0]:.1f}",
                f"{per_photo[1]:.2f}",
                f"{spent[0] / whole:.1%}",
                f"{found}/{args.photos}",
            ]
        )
    print(f"# {args.photos} photos at {width}x{height}, the second half 15 grey levels brighter\n")
    headers = ["repeat", "locate ms / photo", "exposure ms / photo", "share"]
    print(format_table([*headers, "photos with a candidate"], rows))


if __name__ == "__main__":
    main()
