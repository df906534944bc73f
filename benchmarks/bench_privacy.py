"""People: how well the privacy checks find them, how often they take an animal for one, and
what they cost.

Three parts (``--part detectors``, ``scenes``, ``pipeline``; default all):

1. **Detectors on crops**, one check each (``PrivacyGuard.look``, the trap's own code): real
   people (the person boxes of ``benchmarks/field_boxes.json`` on ``../shared/data/field-dev``,
   when present) and a synthetic one (the NASA astronaut photograph from scikit-image, at
   four sizes), against animals (the field set's animal boxes, the CIFAR-10 photographs the
   demo walks, ``edge_agent/demo/samples/sprites``, upscaled as the demo shows them, and the
   same turned grey as an infrared camera sees them). Per detector and for the write gate
   (``Evidence.any``) and the strong evidence (``Evidence.strong``): the share of people and
   of animals each fires on, and the milliseconds a check costs on one thread.
2. **Animal-only scenes** (``--seeds N``): the demo's scenes of seeds 0..N-1 (CIFAR-10
   photographs of animals walking at trap distances, no person), in colour and turned grey,
   through the pipeline with the guard and the model's classifier: counted tracks, people
   counted (each a false person), and tracks whose images the write gate withheld.
3. **The pipeline** on a synthetic scene (``edge_agent.demo.scenes``) in which a person
   walks across while animals cross below, run with the classifier of a model folder
   (default ``models/default``; motion only, every track labelled ``animal``, when it has
   no model.tflite or with ``--motion-only``) once without a privacy guard and once with one,
   alternating, ``--repeats`` times each: frames per second (median), checks made, what was
   counted (one ``person``: the count label needs repeated strong evidence).

    .venv/bin/python benchmarks/bench_privacy.py
    .venv/bin/python benchmarks/bench_privacy.py --part scenes --seeds 8
    .venv/bin/python benchmarks/bench_privacy.py --part pipeline --width 640 --height 480

CPU figures are process time on one thread (``cv2.setNumThreads(1)``): this machine is
shared, and wall time would measure the others. Reading, decoding and writing are not
timed: only what the privacy checks add to the per-frame work (one check per counted track,
again when its box grows by a quarter or a second later, at most
``privacy.max_checks_per_track``).
"""

from __future__ import annotations

import argparse
import json
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
from edge_agent.demo.sprites import PeopleSprites  # noqa: E402
from edge_agent.text import format_table  # noqa: E402
from edge_agent.vision.privacy import LOOK_SIDE, PrivacyGuard  # noqa: E402

START = datetime(2024, 6, 1, 10, tzinfo=UTC)


FIELD = ROOT.parent / "shared" / "data" / "field-dev"
BOXES = ROOT / "benchmarks" / "field_boxes.json"
SPRITES = ROOT / "edge_agent" / "demo" / "samples" / "sprites"


def detector_crops() -> list[tuple[str, str, np.ndarray, tuple[int, int, int, int]]]:
    """(person or animal, where from, image, box on it) to check."""
    crops = []
    if BOXES.exists() and FIELD.exists():
        photos = json.loads(BOXES.read_text(encoding="utf-8"))["photos"]
        for key, item in photos.items():
            image = cv2.imread(str(FIELD / key))
            for box in item["boxes"]:
                kind = "person" if box["label"] == "person" else "animal"
                crops.append((kind, "field", image, tuple(box["box"])))
    for folder in sorted(SPRITES.iterdir()):
        for file in sorted(folder.iterdir()):
            sprite = cv2.resize(cv2.imread(str(file)), (100, 100), interpolation=cv2.INTER_CUBIC)
            framed = cv2.copyMakeBorder(sprite, 40, 40, 40, 40, cv2.BORDER_REFLECT)
            crops.append(("animal", "cifar", framed, (40, 40, 100, 100)))
            grey = cv2.cvtColor(cv2.cvtColor(framed, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            crops.append(("animal", "cifar grey", grey, (40, 40, 100, 100)))
    photo = PeopleSprites().photo
    for size in (64, 100, 160, 240):
        person = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        framed = cv2.copyMakeBorder(person, 40, 40, 40, 40, cv2.BORDER_REFLECT)
        crops.append(("person", "astronaut", framed, (40, 40, size, size)))
    return crops


def detectors_table() -> None:
    guard = PrivacyGuard(Settings().privacy)
    crops = detector_crops()
    # Each detector on the region look() checks (the profile cascade only runs before an
    # image is written); CPU time on one thread (process time: this machine is shared, wall
    # time would measure the others).
    detectors = {
        "face: default": lambda r: guard.find(guard._faces, guard.face_area(r)),
        "face: alt2 (precise)": lambda r: guard.find(guard._precise_faces, guard.face_area(r)),
        "face: profile": lambda r: guard.find(guard._profiles, guard.face_area(r)),
        "body: HOG": guard.bodies,
        "body: upper cascade": lambda r: guard.find(guard._bodies[0], r, 24),
        "body: full cascade": lambda r: guard.find(guard._bodies[1], r, 24),
    }
    hits: dict[tuple[str, str, str], list[int]] = {}
    cpu = dict.fromkeys(detectors, 0.0)
    for kind, source, image, box in crops:
        region = guard.region(image, box)
        found = {}
        for name, detector in detectors.items():
            began = time.process_time()
            found[name] = bool(detector(region))
            cpu[name] += time.process_time() - began
        evidence = guard.look(image, box)
        found["write gate (any)"] = evidence.any
        found["strong (alt2 face, upright box)"] = evidence.strong
        for name, value in found.items():
            for where in (source, "all"):
                entry = hits.setdefault((kind, where, name), [0, 0])
                entry[0] += int(value)
                entry[1] += 1
    groups = [
        (kind, where)
        for kind in ("person", "animal")
        for where in [*sorted({s for k, s, _, _ in crops if k == kind}), "all"]
    ]
    columns = ["check"] + [f"{kind} {where}" for kind, where in groups] + ["CPU ms"]
    names = [name for (_k, w, name) in hits if w == "all"]
    rows = []
    total = sum(cpu.values())
    for name in dict.fromkeys(names):
        row = [name]
        for kind, where in groups:
            n = hits.get((kind, where, name))
            row.append(f"{n[0]}/{n[1]}" if n else "-")
        look_cpu = total - cpu["face: profile"]
        spent = cpu.get(name, look_cpu if name == "write gate (any)" else None)
        row.append(f"{1000 * spent / len(crops):.1f}" if spent is not None else "")
        rows.append(row)
    print(f"## Detectors on crops ({len(crops)}; one check each, at {LOOK_SIDE} px)\n")
    print(format_table(columns, rows))
    look_ms = 1000 * (total - cpu["face: profile"]) / len(crops)
    print(f"\nA track check (look: all but the profile cascade) costs {look_ms:.0f} ms of CPU")
    print(f"on one thread here; every detector on one region {1000 * total / len(crops):.0f} ms\n")


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def scenes_table(model: Path, seeds: int) -> None:
    """False people on animal tracks: the demo's scenes (CIFAR-10 photographs walking, no
    person), in colour and grey, with the guard on and the model's classifier."""
    from edge_agent.demo import sample
    from edge_agent.service.model import load_classifier

    settings = Settings()
    classifier = load_classifier(model, settings.classifier)
    rows = []
    totals = {"colour": [0, 0, 0], "grey": [0, 0, 0]}
    for seed in range(seeds):
        scene = sample.sample_scene(seed)
        for look in ("colour", "grey"):
            pipeline = Pipeline(settings, classifier, privacy=PrivacyGuard(settings.privacy))
            events = []
            for t, frame in scene.frames():
                image = frame if look == "colour" else grey(frame)
                events += pipeline.process(START + timedelta(seconds=t), image)
            events += pipeline.close()
            tracks = sum(o.tracks for e in events for o in e.observations)
            people = sum(e.counts.get("person", 0) for e in events)
            withheld = sum(o.suppressed for e in events for o in e.observations)
            for i, n in enumerate((tracks, people, withheld)):
                totals[look][i] += n
            counted = ", ".join(
                f"{k} {v}"
                for k, v in sorted({k: v for e in events for k, v in e.counts.items()}.items())
            )
            rows.append([str(seed), look, str(tracks), str(people), str(withheld), counted])
    for look, (tracks, people, withheld) in totals.items():
        rows.append(["all", look, str(tracks), str(people), str(withheld), ""])
    print(f"## Animals only: demo scenes 0-{seeds - 1}, {model}\n")
    columns = ["seed", "look", "counted tracks", "person", "withheld (gate only)", "counted"]
    print(format_table(columns, rows))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["detectors", "pipeline", "scenes", "all"], default="all")
    parser.add_argument("--seeds", type=int, default=8, help="--part scenes: demo seeds 0..N-1")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--motion-only", action="store_true", help="No classifier.")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if args.part in ("detectors", "all"):
        detectors_table()
    if args.part in ("scenes", "all"):
        scenes_table(args.model, args.seeds)
    if args.part not in ("pipeline", "all"):
        return

    walks = (
        crossing("person", 1.0, 6.0, y=0.42, width=0.16)
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
    cpu: dict[str, list[float]] = {"off": [], "drop": []}  # CPU seconds per run
    checks: dict[str, int] = {}
    counted: dict[str, dict[str, int]] = {}
    for _ in range(args.repeats):
        for mode in ("off", "drop"):
            guard = PrivacyGuard(settings.privacy) if mode == "drop" else None
            pipeline = Pipeline(settings, classifier, privacy=guard)
            began, began_cpu = time.perf_counter(), time.process_time()
            events = list(pipeline.run(frames))
            elapsed = time.perf_counter() - began
            cpu[mode].append(time.process_time() - began_cpu)
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
        f"{args.repeats} repeats (median); CPU: process time (this machine is shared)"
    )
    base = statistics.median(results["off"])
    base_cpu = statistics.median(cpu["off"])
    rows = []
    for mode in ("off", "drop"):
        fps = statistics.median(results[mode])
        spent = statistics.median(cpu[mode])
        extra = spent - base_cpu
        per_check = f"{1000 * extra / checks[mode]:.1f}" if checks[mode] else "-"
        rows.append(
            [
                "off" if mode == "off" else "on",
                f"{fps:.1f}",
                f"{fps / base:.2f}",
                f"{1000 * spent / len(frames):.1f}",
                str(checks[mode]),
                per_check,
                ", ".join(f"{k} {v}" for k, v in sorted(counted[mode].items())),
            ]
        )
    columns = ["privacy", "fps", "vs off", "CPU ms/frame", "checks", "CPU ms/check", "counted"]
    print(format_table(columns, rows))


if __name__ == "__main__":
    main()
