"""Memory over a long run: does the counting path hold on to anything as the hours pass?

A trap runs for months without a restart, so what the service keeps per frame, per track or
per event must not grow with them. This feeds the demo's kind of clip (``bench_pipeline``'s,
animals walking through every few seconds) again and again to **one** pipeline, as the
footage of one live camera: each pass's timestamps continue from the last one's, an
``--gap`` later. It goes through the wiring of ``trapcount run`` (``service.wiring``: the
store's event writes, the privacy guard, the media keeper writing crops into a temporary
folder), rolls the counts up after every pass as the service's job does, and prints the
resident set size (``VmRSS``) after each pass, then its growth over the second half of the
run in MiB per hour of footage (the first half includes the warm-up: caches, the first
privacy checks, SQLite's page cache).

    .venv/bin/python benchmarks/bench_soak.py                  # 40 passes: about 80 min of footage
    .venv/bin/python benchmarks/bench_soak.py --passes 200 --no-media
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def rss_mib() -> float:
    """This process's resident set size now (``VmRSS``), MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def growth_per_hour(hours: list[float], mib: list[float]) -> float:
    """The least-squares slope of ``mib`` against ``hours`` (MiB an hour of footage)."""
    n = len(hours)
    mean_h, mean_m = sum(hours) / n, sum(mib) / n
    spread = sum((h - mean_h) ** 2 for h in hours)
    if spread == 0:
        return 0.0
    return sum((h - mean_h) * (m - mean_m) for h, m in zip(hours, mib, strict=True)) / spread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=40, help="times the clip is fed")
    parser.add_argument("--gap", type=float, default=60.0, help="seconds between passes")
    parser.add_argument("--size", default="640x480", help="clip size, WIDTHxHEIGHT")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--no-media", action="store_true", help="keep no crops")
    args = parser.parse_args(argv)

    import bench_pipeline

    from edge_agent.capture.video import VideoFileSource
    from edge_agent.config import settings_from_dict
    from edge_agent.service.model import default_model_dir, load_classifier
    from edge_agent.service.wiring import wire
    from edge_agent.store.database import Store

    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="trapcount-soak-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        bench_pipeline.make_clip(clip, width, height)
        values: dict = {"source": {"uri": str(clip)}, "classifier": {"num_threads": 1}}
        if not args.no_media:
            values["media"] = {"media_dir": str(Path(tmp) / "media")}
        settings = settings_from_dict(values)
        classifier = load_classifier(args.model or default_model_dir(), settings.classifier)
        store = Store.open(Path(tmp) / "soak.sqlite")
        wiring = wire(settings, store, classifier, remember_ids=False)  # as the service
        pipeline = wiring.pipeline(classifier)
        start = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
        at = start
        rows: list[tuple[int, float, int, float]] = []
        began = time.perf_counter()
        print(f"clip {width}x{height}; {args.passes} passes, {args.gap:g} s apart", file=sys.stderr)
        for number in range(1, args.passes + 1):
            with VideoFileSource(clip, start_time=at) as source:
                wiring.sink.origin = source.origin_of
                for timestamp, frame in source:
                    wiring.sink.write(pipeline.process(timestamp, frame))
                    last = timestamp
            wiring.sink.write_unprocessed(pipeline.unprocessed)
            pipeline.unprocessed = []
            wiring.sink.rollup(settings.storage.rollup_minutes)
            at = last + timedelta(seconds=args.gap)
            hours = (last - start).total_seconds() / 3600
            rows.append((number, hours, wiring.sink.written, rss_mib()))
            print(
                f"pass {number}/{args.passes}: {hours * 60:.0f} min of footage, "
                f"{wiring.sink.written} events, {rows[-1][3]:.1f} MiB "
                f"({time.perf_counter() - began:.0f} s)",
                file=sys.stderr,
            )
        wiring.sink.write(pipeline.close(at))
        store.close()

    print("\n| pass | footage h | events written | RSS MiB |")
    print("| ---: | ---: | ---: | ---: |")
    step = max(1, len(rows) // 10)
    for number, hours, events, mib in rows:
        if number == 1 or number % step == 0 or number == len(rows):
            print(f"| {number} | {hours:.2f} | {events} | {mib:.1f} |")
    half = rows[len(rows) // 2 :]
    slope = growth_per_hour([r[1] for r in half], [r[3] for r in half]) if len(half) > 1 else 0
    print(
        f"\nsecond half ({len(half)} passes, {half[0][1]:.2f}-{half[-1][1]:.2f} h of footage): "
        f"RSS {min(r[3] for r in half):.1f}-{max(r[3] for r in half):.1f} MiB, "
        f"growth {slope:+.2f} MiB per hour of footage"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
