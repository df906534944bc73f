"""The classifier's compute budget on a Pi: views, classify_every and max_votes against
track-level accuracy and count error on scenes with known truth (issue 25).

    .venv/bin/python benchmarks/bench_budget.py                 # 5 seeds
    .venv/bin/python benchmarks/bench_budget.py --quick         # 2 seeds
    .venv/bin/python benchmarks/bench_budget.py --keras runs/X --model runs/w32

**Model variants.** The same trained Keras model (``--keras``: a ``.keras`` file or a run
folder holding ``model.keras``; default ``models/default/model.keras``) exported with 1, 2
and 6 views (``--tta none flip flip-shift``) through ``trainer.export.export_keras_file``,
what ``trapcount-train export`` runs; the data it calibrates and measures on is
``--data``. Exports go to ``~/.cache/trapcount/bench_budget/<sha256 of the .keras>-<tta>``
and are reused (made the first time: 1, 2 and 4 minutes for 1, 2 and 6 views on the shared
2-core machine). ``--model DIR`` (repeatable) adds any other model folder as it is
(another width or input size).

**Time.** A seed is 216 pipeline runs at the default grid (3 variants x 9 settings x 4
scenes x 2 looks, 85 frames each): 2 to 3.5 minutes on the shared 2-core development
machine (``--seeds 6`` took 20 min 9 s with the exports cached, load average 8-11), so
the default 5 seeds take about 12-17 minutes, plus about 6 minutes of exports the first
time for a new ``.keras``; ``--quick`` (2 seeds) 5-7 minutes.

**Settings.** Every ``tracking.classify_every`` in ``--every`` (default 1 2 4) with every
``tracking.max_votes`` in ``--votes`` (default 5 10 30); all other settings are the
defaults of ``edge_agent.config`` (``classifier.confidence_threshold`` 0.5, one
interpreter thread, no privacy guard).

**Scenes.** For each seed and each k = 1..4, a scene from the scene generator
(``edge_agent.demo.scenes.crossing`` at 640x480 and 10 fps, 1 s of empty background, a
7 s crossing; the CIFAR-10 sprites of ``edge_agent/demo/samples/sprites`` through
``FolderSprites``): k animals crossing together, each of a label drawn from the seed, so a
scene may hold mixed labels. Each is run in colour and turned grey (``cv2`` BGR -> grey ->
BGR: the infrared look). The frames go through the real ``counting.pipeline.Pipeline``
with the LiteRT classifier from ``service.model.load_classifier``, wrapped only to time
each ``classify_crops`` call.

**What is measured.**

- *Track accuracy*: per counted track (the tracks of the closed events), its final label
  (the pipeline's confidence-weighted vote) against the label of the walk it followed. A
  track is matched to the walk whose true box (the sprite's rectangle at that frame time)
  it overlaps most, as mean IoU over the frames the track was seen; a mean IoU below 0.25
  matches nothing ("tracks on no animal", the motion gate's and tracker's doing, the same
  for every variant and listed below the table). Accuracy = right labels / matched tracks,
  colour and grey apart; ``unknown`` (below the confidence threshold) is wrong.
- *Count error*: per event and label, |counted MaxN - true MaxN|, summed (an event the
  pipeline made where there was none counts all its MaxN, a true event it missed all of
  its own). Closed events are matched to the scene's true events by time.
- *Classifier cost*: wall time inside ``classify_crops`` (cropping, resizing and the
  interpreter), invocations (calls of at most ``classifier.max_batch`` crops) and crops,
  per counted track and per second of footage, on this machine.
- *Pi estimates from operation counts*: multiply-adds per crop, counted on each model's
  own ``.tflite`` (``edge_agent.vision.operations.multiply_adds``: convolutions and dense
  layers, the views baked into the file included; a grey companion's on the grey scenes'
  crops, which it names) x crops, over an effective int8 rate, plus a fixed cost per
  invocation:

  | core | int8 MAC/s | per invocation |
  | --- | ---: | ---: |
  | Raspberry Pi 4, one Cortex-A72 at 1.5 GHz | 3.0 G | 0.10 ms |
  | Raspberry Pi Zero 2 W, one Cortex-A53 at 1.0 GHz | 1.4 G | 0.21 ms |

  The Pi 4 figures are ``bench_models.py``'s (about 2 int8 MACs per cycle: 128-bit NEON
  without dot-product instructions). A published check: the README of XNNPACK (TFLite's CPU
  backend; github.com/google/XNNPACK, "Raspberry Pi" table, benchmarked 2020-02-12 with
  ``end2end_bench``, four threads, FP32) runs MobileNet v1 1.0 (569 M MACs, Howard et al.
  2017) in 75 ms on a Pi 4, at least 1.9 G FP32 MAC/s a core; XNNPACK's int8 kernels
  (TensorFlow blog, "Faster Quantized Inference with XNNPACK", 2021-09-09) run MobileNet v1
  about 1.75x faster than FP32 on a Pi 3B+ (134.4 -> 77.0 ms, as a summary of that post
  gives them: velog.io/@kcw4875/Faster-Quantized-Inference-with-XNNPACK; the weakest
  number here): about 3.3 G, so 3.0 G is if anything slow. The Pi Zero 2 W (RP3A0: the
  Pi 3's four A53 cores at 1.0 GHz) is scaled from the same XNNPACK table: the Pi 3B+ (A53
  at 1.4 GHz) took 115 ms where the Pi 4 took 75, so an A53 core at 1.0 GHz does 75 / 115
  x 1.0 / 1.4 = 0.47 of an A72 core: 1.4 G MAC/s, and its per-invocation cost 0.1 / 0.47
  ms. These are **estimates**, not measurements: the
  operation count leaves out pooling, activations, requantisation and the crop itself, and
  none of it has run on a Pi.

**The budget.** 25% of one Pi 4 core at 10 fps with two animals in view. Measured as the
busiest second (10 consecutive frames) of the two-animal scenes (colour and grey): the
estimated Pi 4 classifier time in it. That is the rate while tracks vote (``max_votes``
shortens it, it does not lower it unless fewer votes than ``10 / classify_every`` a second
are left); the issue's arithmetic (2 animals x 5 crops/s x 118 ms) is the same rate. The
mean share over the seconds two animals are in view is printed beside it.

**The default.** The best track accuracy (mean of colour and grey) within the budget;
rows within ``--tie`` points of it (default 1.0) count as equal, and the cheapest of those
(lowest Pi 4 cost per second of footage) is chosen: if one view with voting matches six
views, one view. Scene counts are small (at 5 seeds, 50 animals a look: one track is 2
points), so read the accuracy columns with their track counts.

The sprites are CIFAR-10 training photographs (some in a model's training split),
upscaled and pasted on a synthetic background: the accuracies compare variants on one
synthetic domain; they are not field accuracies.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# First: importing it pins every thread pool to one thread before TensorFlow starts.
from bench_models import PI4_CALL_OVERHEAD_S, PI4_INT8_MACS_PER_S  # noqa: I001

import cv2
import numpy as np

from edge_agent.config import Settings, settings_from_dict
from edge_agent.counting.events import ClosedEvent
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes, sprites
from edge_agent.demo.sample import SPRITES
from edge_agent.manifest import read_manifest

# The budget (a share of one Pi 4 core with two animals in view), as `trapcount doctor` checks it.
from edge_agent.service.doctor import BUDGET_ANIMALS, BUDGET_SHARE
from edge_agent.service.model import load_classifier
from edge_agent.vision.classifier import Classifier, Prediction
from edge_agent.vision.geometry import iou
from edge_agent.vision.operations import multiply_adds

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KERAS = ROOT / "models" / "default" / "model.keras"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
TTA_VIEWS = {"none": 1, "flip": 2, "flip-shift": 6}

# The scenes (see the module docstring).
WIDTH, HEIGHT, FPS = 640, 480, 10.0
LEAD_S, CROSS_S, TAIL_S = 1.0, 7.0, 0.5
MATCH_IOU = 0.25
LOOKS = ("colour", "grey")


@dataclasses.dataclass(frozen=True)
class PiCore:
    """One Pi core for the estimate: an effective int8 multiply-add rate and a fixed cost
    per interpreter invocation (module docstring: the numbers and their sources)."""

    name: str
    macs_per_s: float
    call_s: float

    def seconds(self, macs: float, calls: int) -> float:
        return macs / self.macs_per_s + calls * self.call_s


# XNNPACK's Raspberry Pi table: MobileNet v1 75 ms on a Pi 4, 115 ms on a Pi 3B+ (A53 at
# 1.4 GHz); the Zero 2 W's A53 runs at 1.0 GHz.
A53_1GHZ_OVER_A72 = (75 / 115) * (1.0 / 1.4)
PI4 = PiCore("Pi 4", PI4_INT8_MACS_PER_S, PI4_CALL_OVERHEAD_S)
PI_ZERO_2W = PiCore(
    "Pi Zero 2 W",
    round(PI4_INT8_MACS_PER_S * A53_1GHZ_OVER_A72, -8),
    PI4_CALL_OVERHEAD_S / A53_1GHZ_OVER_A72,
)


# -- model variants -----------------------------------------------------------------------


@dataclasses.dataclass
class Variant:
    name: str
    model_dir: Path
    views: int
    macs_per_crop: int  # the colour network's, views included
    grey_views: int  # a grey companion's views, else ``views``
    grey_macs_per_crop: int  # what a grey crop costs: the companion's, else the colour one's
    val_int8: float | None = None
    val_int8_grey: float | None = None

    def macs(self, look: str) -> int:
        """Multiply-adds of one crop of ``look``: grey scenes' crops go to the companion."""
        return self.grey_macs_per_crop if look == "grey" else self.macs_per_crop

    @property
    def views_shown(self) -> str:
        same = self.grey_views == self.views
        return str(self.views) if same else f"{self.views} / {self.grey_views}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_variant(keras_path: Path, data: list[str], tta: str, cache: Path) -> Path:
    """``trapcount-train export KERAS --data ... --tta TTA`` into the cache (reused)."""
    out = cache / f"{sha256_of(keras_path)[:16]}-{tta}"
    if (out / "model.json").is_file() and (out / "model.tflite").is_file():
        print(f"# {tta}: cached export {out}", file=sys.stderr)
        return out
    from trainer.export import export_keras_file

    print(f"# {tta}: exporting {keras_path} -> {out}", file=sys.stderr)
    started = time.monotonic()
    export_keras_file(keras_path, data, out, tta=tta)
    print(f"# {tta}: exported in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def variant_of(model_dir: Path, name: str) -> Variant:
    """A model folder, its cost counted on its own .tflite files (the views baked in)."""
    manifest = read_manifest(model_dir)
    accuracy = manifest.accuracy or {}
    views = TTA_VIEWS[manifest.tta or "none"]
    macs = multiply_adds(model_dir / "model.tflite")
    companion = manifest.grey_companion
    grey_views, grey_macs = views, macs
    if companion is not None:
        grey_views = TTA_VIEWS.get(companion.tta, 1)
        grey_macs = multiply_adds(companion.path(model_dir))
    return Variant(
        name=name,
        model_dir=model_dir,
        views=views,
        macs_per_crop=macs,
        grey_views=grey_views,
        grey_macs_per_crop=grey_macs,
        val_int8=accuracy.get("int8"),
        val_int8_grey=accuracy.get("int8_grey"),
    )


# -- scenes -------------------------------------------------------------------------------


def budget_scene(seed: int, k: int, source: sprites.FolderSprites) -> scenes.Scene:
    """k animals crossing together, labels drawn from (seed, k); 1 s of background first."""
    rng = np.random.default_rng([seed, k])
    labels = [source.labels[int(i)] for i in rng.integers(len(source.labels), size=k)]
    walks = scenes.crossing(
        labels[0],
        LEAD_S,
        CROSS_S,
        k=k,
        y=float(rng.uniform(0.55, 0.65)),
        direction=1 if rng.random() < 0.5 else -1,
        width=0.16 if k <= 2 else 0.13,
        seed=10 * seed,
    )
    walks = [dataclasses.replace(w, label=label) for w, label in zip(walks, labels, strict=True)]
    return scenes.Scene(
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        duration_s=LEAD_S + CROSS_S + TAIL_S,
        walks=walks,
        seed=1000 * seed + k,
        sprites=source,
    )


def walk_box(scene: scenes.Scene, index: int, t: float) -> tuple[float, ...] | None:
    """The true box (x, y, w, h) of walk ``index`` at ``t``, clipped to the frame (the
    sprite's rectangle; its 2-pixel bob is left out)."""
    pos = scene.walks[index].position(t)
    if pos is None:
        return None
    h, w = scene._sprites[index][1].shape  # the sprite as rendered (alpha mask)
    cx, cy = pos[0] * scene.width, pos[1] * scene.height
    x0, y0 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
    x1, y1 = min(float(scene.width), cx + w / 2), min(float(scene.height), cy + h / 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


# -- one run --------------------------------------------------------------------------------


class TimedClassifier:
    """The edge classifier as the pipeline calls it, with each call timed and counted and
    charged to the frame being processed."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.frame = 0
        self.calls: list[tuple[int, int, int, float]] = []  # frame, crops, invocations, s

    @property
    def sha256(self) -> str:
        return self.inner.sha256

    def classify_crops(self, frame_bgr: np.ndarray, boxes: list) -> list[Prediction]:
        started = time.perf_counter()
        predictions = self.inner.classify_crops(frame_bgr, boxes)
        seconds = time.perf_counter() - started
        invocations = math.ceil(len(boxes) / self.inner.max_batch) if boxes else 0
        self.calls.append((self.frame, len(boxes), invocations, seconds))
        return predictions


@dataclasses.dataclass
class RunResult:
    right: int = 0
    matched: int = 0
    animals: int = 0
    unmatched: int = 0  # counted tracks on no animal
    missed: int = 0  # walks no counted track followed
    counted: int = 0
    count_error: int = 0
    crops: int = 0
    invocations: int = 0
    seconds: float = 0.0
    footage_s: float = 0.0
    frame_crops: list[int] = dataclasses.field(default_factory=list)
    frame_calls: list[int] = dataclasses.field(default_factory=list)
    in_view: list[int] = dataclasses.field(default_factory=list)


def event_span(event: ClosedEvent) -> tuple[float, float]:
    return (
        (event.start - scenes.DEFAULT_START).total_seconds(),
        (event.end - scenes.DEFAULT_START).total_seconds(),
    )


def count_error(closed: Sequence[ClosedEvent], truth: scenes.SceneTruth) -> int:
    """Sum over events and labels of |counted MaxN - true MaxN|; closed events are matched
    to the true event they overlap most in time (within the event gap)."""
    counted: list[dict[str, int]] = [{} for _ in truth.events]
    error = 0
    for event in closed:
        start, end = event_span(event)
        best, best_overlap = None, -math.inf
        for i, true in enumerate(truth.events):
            overlap = min(end, true.end_s) - max(start, true.start_s)
            if overlap > -truth.event_gap_s and overlap > best_overlap:
                best, best_overlap = i, overlap
        if best is None:
            error += sum(event.counts.values())
            continue
        for label, n in event.counts.items():
            counted[best][label] = counted[best].get(label, 0) + n
    for true, got in zip(truth.events, counted, strict=True):
        for label in set(true.counts) | set(got):
            error += abs(got.get(label, 0) - true.counts.get(label, 0))
    return error


def run_once(
    settings: Settings,
    classifier: Classifier,
    scene: scenes.Scene,
    frames: list[np.ndarray],
    truth: scenes.SceneTruth,
    in_view: list[int],
) -> RunResult:
    timed = TimedClassifier(classifier)
    pipeline = Pipeline(settings, timed)
    frame_time: dict[int, float] = {}
    closed: list[ClosedEvent] = []
    for index, frame in enumerate(frames):
        t = index / scene.fps
        timed.frame = index
        closed += pipeline.process(scenes.DEFAULT_START + timedelta(seconds=t), frame)
        frame_time[pipeline.tracker.frame] = t
    closed += pipeline.close()

    result = RunResult(animals=len(scene.walks), footage_s=len(frames) / scene.fps, in_view=in_view)
    followed: set[int] = set()
    for event in closed:
        for track in event.tracks:
            result.counted += 1
            scores = np.zeros(len(scene.walks))
            for frame_no, (cx, cy, w, h) in zip(track.seen_frames, track.shapes, strict=True):
                t = frame_time[frame_no]
                box = (cx - w / 2, cy - h / 2, w, h)
                for i in range(len(scene.walks)):
                    true_box = walk_box(scene, i, t)
                    if true_box is not None:
                        scores[i] += iou(box, true_box)
            scores /= max(1, len(track.seen_frames))
            best = int(np.argmax(scores))
            if scores[best] < MATCH_IOU:
                result.unmatched += 1
                continue
            followed.add(best)
            result.matched += 1
            result.right += track.label == scene.walks[best].label
    result.missed = len(scene.walks) - len(followed)
    result.count_error = count_error(closed, truth)
    result.frame_crops = [0] * len(frames)
    result.frame_calls = [0] * len(frames)
    for frame_no, crops, invocations, seconds in timed.calls:
        result.crops += crops
        result.invocations += invocations
        result.seconds += seconds
        result.frame_crops[frame_no] += crops
        result.frame_calls[frame_no] += invocations
    return result


# -- the table ------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    variant: Variant
    every: int
    votes: int
    runs: dict[str, list[RunResult]] = dataclasses.field(
        default_factory=lambda: {look: [] for look in LOOKS}
    )
    busy: dict[str, float] = dataclasses.field(default_factory=dict)  # core -> busiest share
    mean_share: float = 0.0

    def all_runs(self) -> list[RunResult]:
        return [r for look in LOOKS for r in self.runs[look]]

    def accuracy(self, look: str) -> float:
        matched = sum(r.matched for r in self.runs[look])
        return sum(r.right for r in self.runs[look]) / matched if matched else float("nan")

    def matched(self, look: str) -> int:
        return sum(r.matched for r in self.runs[look])

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean([self.accuracy(look) for look in LOOKS]))

    def count_error(self, look: str) -> int:
        return sum(r.count_error for r in self.runs[look])

    def total(self, field: str) -> float:
        return sum(getattr(r, field) for r in self.all_runs())

    def pi_seconds(self, core: PiCore) -> float:
        macs = sum(run.crops * self.variant.macs(look) for look in LOOKS for run in self.runs[look])
        return core.seconds(macs, int(self.total("invocations")))

    def within_budget(self) -> bool:
        return self.busy[PI4.name] <= BUDGET_SHARE

    def finish(self, fps: float) -> None:
        """Busiest second and mean share with two animals in view (their scenes only)."""
        window = round(fps)
        in_view_s = in_view_pi4 = 0.0
        for core in (PI4, PI_ZERO_2W):
            busiest = 0.0
            for look, run in ((each, run) for each in LOOKS for run in self.runs[each]):
                if max(run.in_view, default=0) != BUDGET_ANIMALS:
                    continue
                per_frame = [
                    core.seconds(crops * self.variant.macs(look), calls)
                    for crops, calls in zip(run.frame_crops, run.frame_calls, strict=True)
                ]
                sums = np.convolve(per_frame, np.ones(window), mode="valid")
                busiest = max(busiest, float(sums.max()) if len(sums) else 0.0)
                if core is PI4:
                    two = [
                        s
                        for s, n in zip(per_frame, run.in_view, strict=True)
                        if n == BUDGET_ANIMALS
                    ]
                    in_view_s += len(two) / fps
                    in_view_pi4 += sum(two)
            self.busy[core.name] = busiest * fps / window
        self.mean_share = in_view_pi4 / in_view_s if in_view_s else float("nan")


def choose(rows: list[Row], tie: float) -> Row | None:
    fitting = [r for r in rows if r.within_budget()]
    if not fitting:
        return None
    best = max(r.mean_accuracy for r in fitting)
    equal = [r for r in fitting if r.mean_accuracy >= best - tie / 100]
    return min(equal, key=lambda r: (r.pi_seconds(PI4), -r.mean_accuracy))


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def print_tables(rows: list[Row], variants: list[Variant], seeds: int, tie: float) -> None:
    print(
        f"{seeds} seeds x 1-4 animals x colour and grey, {WIDTH}x{HEIGHT} at {FPS:g} fps; "
        f"budget: {BUDGET_SHARE:.0%} of one Pi 4 core, busiest second with "
        f"{BUDGET_ANIMALS} animals in view (Pi figures are estimates from operation counts)"
    )
    for core in (PI4, PI_ZERO_2W):
        print(
            f"{core.name}: {core.macs_per_s / 1e9:.1f} G int8 MAC/s and "
            f"{1000 * core.call_s:.2f} ms per invocation, one core (estimates)"
        )
    print()
    print(
        "| model | views | MACs / crop | Pi 4 ms / crop | Pi Zero 2 W ms / crop | val int8 |"
        "\n|---|---:|---:|---:|---:|---:|"
    )
    for v in variants:
        val = "" if v.val_int8 is None else f"{100 * v.val_int8:.2f}%"
        if v.val_int8_grey is not None:
            val += f" (grey {100 * v.val_int8_grey:.2f}%)"
        costs = [v.macs_per_crop]
        if v.grey_macs_per_crop != v.macs_per_crop:
            costs.append(v.grey_macs_per_crop)

        def each(figure: Callable[[int], float], costs: list[int] = costs) -> str:
            return " / ".join(f"{figure(m):.1f}" for m in costs)

        print(
            f"| {v.name} | {v.views_shown} | {each(lambda m: m / 1e6)} M "
            f"| {each(lambda m: 1000 * PI4.seconds(m, 1))} "
            f"| {each(lambda m: 1000 * PI_ZERO_2W.seconds(m, 1))} | {val} |"
        )
    if any(v.grey_macs_per_crop != v.macs_per_crop for v in variants):
        print("\n(two figures: a colour crop / a grey crop, which the grey companion names)")
    print()
    print(
        "| model | views | every | votes | track acc colour | track acc grey | count error "
        "colour / grey | crops | invocations | ms / track here | ms / s here | Pi 4 ms / track "
        "| Pi 4 ms / s | Pi 4 core, busiest s | Pi 4 core, mean with 2 in view "
        "| Pi Zero 2 W core, busiest s | within budget |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        counted = r.total("counted") or 1
        footage = r.total("footage_s")
        ms_here = 1000 * r.total("seconds")
        print(
            f"| {r.variant.name} | {r.variant.views_shown} | {r.every} | {r.votes} "
            f"| {pct(r.accuracy('colour'))} of {r.matched('colour')} "
            f"| {pct(r.accuracy('grey'))} of {r.matched('grey')} "
            f"| {r.count_error('colour')} / {r.count_error('grey')} "
            f"| {int(r.total('crops')):,} | {int(r.total('invocations')):,} "
            f"| {ms_here / counted:.1f} | {ms_here / footage:.1f} "
            f"| {1000 * r.pi_seconds(PI4) / counted:.0f} "
            f"| {1000 * r.pi_seconds(PI4) / footage:.0f} "
            f"| {pct(r.busy[PI4.name])} | {pct(r.mean_share)} "
            f"| {pct(r.busy[PI_ZERO_2W.name])} | {'yes' if r.within_budget() else 'no'} |"
        )
    print()
    for look in LOOKS:
        runs = rows[0].runs[look]
        print(
            f"{look}: {sum(r.animals for r in runs)} animals, {sum(r.counted for r in runs)} "
            f"counted tracks, {sum(r.unmatched for r in runs)} of them on no animal, "
            f"{sum(r.missed for r in runs)} animals no counted track followed (first row)"
        )
    print()
    chosen = choose(rows, tie)
    best = max(rows, key=lambda r: r.mean_accuracy)
    print(
        f"Best track accuracy overall: {best.variant.name}, every {best.every}, votes "
        f"{best.votes}: {pct(best.mean_accuracy)} (mean of colour and grey), "
        f"Pi 4 busiest second {pct(best.busy[PI4.name])}."
    )
    if chosen is None:
        print("Default: no variant and setting fits the budget.")
        return
    print(
        f"Default (best within budget, ties within {tie:g} points to the cheapest): "
        f"{chosen.variant.name} ({chosen.variant.views_shown} view(s)), classify_every "
        f"{chosen.every}, max_votes {chosen.votes}: {pct(chosen.mean_accuracy)}, "
        f"Pi 4 busiest second {pct(chosen.busy[PI4.name])}."
    )


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", type=Path, default=DEFAULT_KERAS, help="the trained model")
    parser.add_argument(
        "--tta",
        nargs="*",
        default=list(TTA_VIEWS),
        choices=list(TTA_VIEWS),
        help="exports of --keras to compare (none: only --model folders)",
    )
    parser.add_argument("--data", action="append", help=f"export data (default {DEFAULT_DATA})")
    parser.add_argument("--model", type=Path, action="append", default=[], help="more models")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--votes", type=int, nargs="+", default=[5, 10, 30])
    parser.add_argument("--seeds", type=int, default=5, help="scene seeds 0 .. N-1")
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument("--tie", type=float, default=1.0, help="accuracy points that tie")
    parser.add_argument("--cache", type=Path, help="export cache folder")
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    keras_path = args.keras / "model.keras" if args.keras.is_dir() else args.keras
    started = time.monotonic()

    variants: list[Variant] = []
    if args.tta:
        from trainer.data import cache_dir

        cache = args.cache or cache_dir() / "bench_budget"
        data = args.data or [str(DEFAULT_DATA)]
        if not keras_path.is_file():
            parser.error(f"--keras: no such model {keras_path}")
        for tta in args.tta:
            folder = export_variant(keras_path, data, tta, cache)
            name = f"{keras_path.parent.name} {tta}"
            variants.append(variant_of(folder, name))
    for folder in args.model:
        variants.append(variant_of(folder, folder.name))
    if not variants:
        parser.error("nothing to measure: give --tta modes or --model folders")

    base = Settings()
    classifiers = {v.name: load_classifier(v.model_dir, base.classifier) for v in variants}
    settings = {
        (every, votes): settings_from_dict(
            {"tracking": {"classify_every": every, "max_votes": votes}}
        )
        for every in args.every
        for votes in args.votes
    }
    rows = {(v.name, e, n): Row(v, e, n) for v in variants for (e, n) in settings}
    source = sprites.FolderSprites(SPRITES)
    unknown = set(source.labels) - set(next(iter(classifiers.values())).labels)
    if unknown:
        raise SystemExit(f"the model has no label for the sprites {sorted(unknown)}")

    for seed in range(seeds):
        for k in range(1, 5):
            scene = budget_scene(seed, k, source)
            truth = scene.truth(base.events.event_gap_s)
            times = [i / scene.fps for i in range(scene.frame_count)]
            in_view = [len(scene.visible(t)) for t in times]
            colour = [frame for _, frame in scene.frames()]
            for look in LOOKS:
                frames = colour if look == "colour" else [grey(f) for f in colour]
                for v in variants:
                    for (every, votes), s in settings.items():
                        result = run_once(s, classifiers[v.name], scene, frames, truth, in_view)
                        rows[(v.name, every, votes)].runs[look].append(result)
        print(
            f"# seed {seed} done, {time.monotonic() - started:.0f} s since the start",
            file=sys.stderr,
        )

    table = list(rows.values())
    for row in table:
        row.finish(FPS)
    print_tables(table, variants, seeds, args.tie)
    print(f"\n({time.monotonic() - started:.0f} s in all)")
    for classifier in classifiers.values():
        classifier.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
