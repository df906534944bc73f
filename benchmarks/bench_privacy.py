"""Pipeline frame rate with the privacy checks on (``privacy.mode = drop``) against off.

Renders a synthetic scene (``edge_agent.demo.scenes``) in which a person (the NASA astronaut
photograph from scikit-image when installed, else a grey figure) walks across while animals
cross below, then runs ``edge_agent.counting.pipeline.Pipeline`` over the same frames in memory with
the classifier of a model folder (default ``models/default``; motion only, every track
labelled ``animal``, when it has no model.tflite or with ``--motion-only``),
once without a privacy guard and once with one, alternating, ``--repeats`` times each.
Prints frames per second (median), the person checks made and what was counted.

    .venv/bin/python benchmarks/bench_privacy.py
    .venv/bin/python benchmarks/bench_privacy.py --width 640 --height 480 --repeats 5

Reading, decoding and writing are not timed: only what the privacy checks add to the
per-frame work (one check per counted track, plus one per time its box grows by a quarter).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.config import Settings  # noqa: E402
from edge_agent.counting.pipeline import Pipeline  # noqa: E402
from edge_agent.demo.scenes import Scene, crossing  # noqa: E402
from edge_agent.demo.sprites import ProceduralSprites  # noqa: E402
from edge_agent.vision.privacy import PrivacyGuard  # noqa: E402

START = datetime(2024, 6, 1, 10, tzinfo=UTC)


class PeopleSprites:
    def __init__(self) -> None:
        self.animals = ProceduralSprites(["deer", "fox", "boar"])
        self.labels = ["deer", "fox", "boar", "person"]
        try:
            from skimage import data

            self.photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        except ImportError:
            self.photo = np.full((512, 512, 3), 120, np.uint8)

    def sprite(self, label: str, width: int, rng: np.random.Generator):
        if label != "person":
            return self.animals.sprite(label, width, rng)
        image = cv2.resize(self.photo, (width, width), interpolation=cv2.INTER_AREA)
        return image, np.ones((width, width), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--motion-only", action="store_true", help="No classifier.")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    walks = (
        crossing("person", 1.0, 6.0, y=0.3, width=0.25)
        + crossing("deer", 2.0, 6.0, y=0.85, width=0.15, direction=-1, seed=3)
        + crossing("fox", 9.0, 4.0, y=0.6, k=2, width=0.14, seed=5)
        + crossing("boar", 14.0, 5.0, y=0.7, width=0.16, seed=7)
    )
    scene = Scene(
        width=args.width,
        height=args.height,
        fps=args.fps,
        duration_s=20.0,
        walks=walks,
        sprites=PeopleSprites(),
        seed=1,
    )
    frames = [(START + timedelta(seconds=t), frame) for t, frame in scene.frames()]
    settings = Settings()
    classifier = None
    if not args.motion_only and not (args.model / "model.tflite").is_file():
        print(f"no model.tflite in {args.model}: motion only", file=sys.stderr)
    elif not args.motion_only:
        from edge_agent.vision.classifier import Classifier

        classifier = Classifier(args.model)

    results: dict[str, list[float]] = {"off": [], "drop": []}
    checks: dict[str, int] = {}
    counted: dict[str, dict[str, int]] = {}
    for _ in range(args.repeats):
        for mode in ("off", "drop"):
            guard = PrivacyGuard(settings.privacy) if mode == "drop" else None
            pipeline = Pipeline(settings, classifier, privacy=guard)
            began = time.perf_counter()
            events = list(pipeline.run(frames))
            elapsed = time.perf_counter() - began
            results[mode].append(len(frames) / elapsed)
            checks[mode] = pipeline.person_checks
            totals: dict[str, int] = {}
            for event in events:
                for label, n in event.counts.items():
                    totals[label] = totals.get(label, 0) + n
            counted[mode] = totals

    model = "motion only" if classifier is None else str(args.model)
    print(
        f"{len(frames)} frames {args.width}x{args.height}, classifier {model}, "
        f"{args.repeats} repeats (median fps)"
    )
    print(f"{'privacy':<8} {'fps':>8} {'vs off':>7} {'checks':>7} {'ms/check':>9}  counted")
    base = statistics.median(results["off"])
    for mode in ("off", "drop"):
        fps = statistics.median(results[mode])
        label = "off" if mode == "off" else "on"
        extra_s = len(frames) / fps - len(frames) / base
        per_check = f"{1000 * extra_s / checks[mode]:.1f}" if checks[mode] else "-"
        totals = ", ".join(f"{k} {v}" for k, v in sorted(counted[mode].items()))
        print(
            f"{label:<8} {fps:>8.1f} {fps / base:>7.2f} {checks[mode]:>7} {per_check:>9}  {totals}"
        )


if __name__ == "__main__":
    main()
