"""The demo's scene across seeds: how many animals the whole pipeline counts right.

``make demo`` shows one scene (``edge_agent.demo.SCENE_SEED``). This renders the same kind of
scene for each seed (sprites, paths and events drawn from it), runs ``trapcount process``
on it through ``edge_agent.demo.sample`` with each model, and compares the per-label MaxN totals
with the truth the scene generator knows. Per model it prints the scenes counted exactly
right, the animals counted under their own label (per label, the smaller of counted and
true), and the animals the privacy checks took for people.

    .venv/bin/python benchmarks/bench_demo_scenes.py --seeds 16 --model models/default
    .venv/bin/python benchmarks/bench_demo_scenes.py --seeds 20 --model models/default \
        --config cheaper.toml

``--config``: TOML sections added to the demo's configuration (``demo.DEMO_CONFIG``; not its
own ``[trap]``, ``[classifier]`` or ``[events]``), to see what a setting does to the counts.

The sprites are CIFAR-10 training photographs (some in a model's training split), upscaled
and walked over a synthetic background: a check of the pipeline on one synthetic domain,
not of a model's accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

from edge_agent.demo import sample as demo
from edge_agent.store.database import Store


def counted_totals(model: Path, seed: int, out: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Run the demo on the scene of ``seed``: (counted, true) MaxN totals per label."""
    with contextlib.redirect_stdout(io.StringIO()):
        demo.main(["--out", str(out), "--model", str(model), "--seed", str(seed)])
    with Store.open(out / "demo.sqlite", create=False) as store:
        counted = store.totals()
    truth = demo.sample_scene(seed).truth(demo.EVENT_GAP_S)  # no second rendering needed
    return counted, dict(truth.totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16, help="seeds 0 .. N-1")
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--config", type=Path, help="TOML sections added to the demo's")
    args = parser.parse_args(argv)
    if args.config is not None:
        # The demo writes this text as the configuration it runs ``process`` with.
        demo.DEMO_CONFIG += "\n" + args.config.read_text(encoding="utf-8")

    print(
        "| model | scenes counted exactly | animals counted under their label | taken for people |"
    )
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="trapcount-scenes-") as tmp:
        for index, model in enumerate(args.model):
            exact = right = people = animals = 0
            for seed in range(args.seeds):
                counted, truth = counted_totals(model, seed, Path(tmp) / f"{index}-{seed}")
                exact += counted == truth
                right += sum(min(counted.get(label, 0), n) for label, n in truth.items())
                people += counted.get("person", 0)
                animals += sum(truth.values())
                print(f"# {model} seed {seed}: counted {counted}, truth {truth}", file=sys.stderr)
            print(
                f"| {model} | {exact} of {args.seeds} | {right} of {animals} "
                f"| {people} of {animals} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
