"""``make demo``: make a sample camera-trap video, count it with the shipped model, compare.

    python -m edge_agent.demo.sample [--out demo-out] [--model models/default] [--seed N]

The video is synthetic: CIFAR-10 photographs of animals (``edge_agent/samples/sprites``,
made by ``scripts/make_demo_sprites.py``) walk across a textured background in three events
(two together, one alone, three together) while a branch sways. The agent processes it
exactly as ``trapcount process`` does and prints its per-label counts beside the truth the
scene generator knows. The sample images come from CIFAR-10's training set, so this shows
the pipeline working end to end, not the model's accuracy (docs/benchmarks.md has that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent import cli
from edge_agent.demo import scenes, sprites, writers
from edge_agent.service.model import default_model_dir

SPRITES = Path(__file__).resolve().parent / "samples" / "sprites"
EVENT_GAP_S = 10.0
# Upscaled, re-compressed photos walking over grass are further from CIFAR-10 than its
# validation crops and score lower, so the demo trusts the model down to 0.3 instead of the
# default 0.5 (docs/benchmarks.md has the threshold table of the shipped model).
CONFIDENCE_THRESHOLD = 0.3
# Which sprites walk, and how, is drawn from this seed. It is a chosen scene, not a sample:
# over seeds 0-15 the pipeline counted 66 of 96 animals right with either the current or
# the previous shipped model, and the privacy checks took 22 for people (docs/benchmarks.md,
# "The demo scene"). Seed 2 is one the shipped model counts right, as did the one before it
# (2026-12-06); the scene before was seed 7, where this model calls one of two horses a dog,
# and before that seed 3.
SCENE_SEED = 2
# The README's flow goes on from the demo to `trapcount export camtrap-dp --config
# demo-out/demo.toml`, and a Camtrap DP deployment needs coordinates: the demo's trap
# stands at a made-up place, named as such.
DEMO_CONFIG = f"""\
[trap]
id = "demo-trap"
location_name = "sample scene (synthetic video; made-up coordinates)"
latitude = 47.3769
longitude = 8.5417
camera_model = "trapcount scene generator"

[classifier]
confidence_threshold = {CONFIDENCE_THRESHOLD}

[events]
event_gap_s = {EVENT_GAP_S}
"""


def sample_scene(seed: int = SCENE_SEED) -> scenes.Scene:
    """The demo's kind of scene; ``seed`` draws its sprites, paths and events."""
    return scenes.example_scene(
        width=640,
        height=480,
        fps=10.0,
        gap_s=2 * EVENT_GAP_S,
        seed=seed,
        sprites=sprites.FolderSprites(SPRITES),
    )


def make_sample_video(out_dir: Path, seed: int = SCENE_SEED) -> tuple[Path, scenes.SceneTruth]:
    video = out_dir / "sample.mp4"
    truth = writers.write_video(sample_scene(seed), video, event_gap_s=EVENT_GAP_S)
    return video, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument(
        "--seed", type=int, default=SCENE_SEED, help=f"scene seed (default {SCENE_SEED})"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "demo.sqlite"
    db.unlink(missing_ok=True)

    print(f"making a sample camera-trap video in {args.out} ...", file=sys.stderr)
    video, truth = make_sample_video(args.out, args.seed)
    config = args.out / "demo.toml"
    config.write_text(DEMO_CONFIG, encoding="utf-8")
    model = args.model or default_model_dir()
    command = ["process", str(video), "--config", str(config), "--db", str(db)]
    command += ["--model", str(model)]
    print(f"$ trapcount {' '.join(command)}", file=sys.stderr)
    try:
        cli.main(command)
    except SystemExit as exit_:
        if exit_.code:
            return int(exit_.code) if isinstance(exit_.code, int) else 1

    print("\nwhat the scene generator put in the video (MaxN per event and label):")
    for number, event in enumerate(truth.events, start=1):
        animals = ", ".join(f"{n} {label}" for label, n in event.counts.items())
        print(f"  event {number}: {event.start_s:5.1f}-{event.end_s:5.1f} s  {animals}")
    totals = ", ".join(f"{label} {n}" for label, n in truth.totals.items())
    print(f"  totals: {totals}")
    print(f"\nreport: trapcount report --db {db} --format table")
    package = args.out / "package"
    print(f"export: trapcount export camtrap-dp --db {db} --config {config} --out {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
