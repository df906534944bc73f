"""Peak memory (RSS) of ``trapcount process`` on large photos and on 1080p video.

Writes its own test media with the project's scene generator (``edge_agent.demo``) into a
temporary folder, at the sizes a field camera produces:

- ``start-up``: an empty folder: what ``process`` holds before its first frame (Python,
  numpy, OpenCV, SQLAlchemy, the database's migrations, the model, the privacy checks'
  detectors);
- ``photos 12 MP``: a burst of 12-megapixel JPEGs (4000x3000, EXIF times one second
  apart, ``--burst`` photos, animals walking through), as a camera trap writes them;
- ``photos 48 MP`` (``--huge``): the same burst at 8000x6000;
- ``video 1080p``: a 1920x1080 clip (mp4v) with the demo's kind of scene;
- ``time-lapse 1080p``: a 60 s 1920x1080 clip at 1 fps (a deer shifting between two spots),
  which ``process`` locates in bursts (``motion.stills_max_fps``) and reads lean.

Each case runs ``python -m edge_agent.cli process MEDIA --db NEW.sqlite`` (the shipped
model, defaults otherwise) in its own subprocess and reads that subprocess's peak resident
set size from ``os.wait4`` (the kernel's ``ru_maxrss``: the most memory it ever held). Linux
carries the parent's peak into a child's ``ru_maxrss`` at ``exec``, so this script stays
small: the media are written by a subprocess of their own, and nothing heavy is imported
here.
The counts it printed are compared between runs so that a memory change that changes the
counts shows.

``--existing-db``: each case's database is made (migrated) by a process of its own first,
as on a trap after its first start, so that the measured run opens a database already at
this trapcount's schema (which needs no Alembic: ``store.database.SCHEMA_HEAD``).

``--before REV`` also runs every case with the code of git revision ``REV`` (checked out
into a temporary worktree, this working tree untouched) on the same media, and prints both.

    .venv/bin/python benchmarks/bench_memory.py
    .venv/bin/python benchmarks/bench_memory.py --before HEAD~3 --huge
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_MIB = 200


def photo_scene(width: int, height: int):
    """Two deer crossing and a fox, at ``width`` x ``height``, with the demo's sprites."""
    from edge_agent.demo import scenes

    walks = scenes.crossing("deer", -0.5, 6.0, k=2, y=0.62, width=0.16, seed=1)
    walks += scenes.crossing("fox", -0.5, 6.0, direction=-1, y=0.8, width=0.1, seed=4)
    return scenes.Scene(width=width, height=height, fps=1.0, duration_s=5.0, walks=walks, seed=5)


def write_photos(folder: Path, width: int, height: int, photos: int) -> None:
    """``photos`` photos a second apart (the animals cross in the first five seconds)."""
    from edge_agent.demo import writers

    times = [5.0 * i / max(1, photos - 1) for i in range(photos)]
    writers.write_image_burst(photo_scene(width, height), folder, times, event_gap_s=10.0)


def write_video(path: Path, width: int, height: int, seconds: float) -> None:
    from edge_agent.demo import scenes, writers

    scene = scenes.example_scene(width=width, height=height, fps=10.0, gap_s=4.0, seed=3)
    scene.duration_s = min(scene.duration_s, seconds)
    writers.write_video(scene, path, event_gap_s=3.0)


def write_time_lapse(path: Path, width: int, height: int, seconds: float) -> None:
    """One frame a second: a deer in view throughout, shifting between two spots."""
    from edge_agent.demo import scenes, writers

    steps = range(int(seconds) + 1)
    points = tuple((float(t), 0.4 + 0.08 * ((t // 2) % 2), 0.6) for t in steps)
    walk = scenes.Walk("deer", points, width=0.14, seed=1)
    scene = scenes.Scene(
        width=width, height=height, fps=1.0, duration_s=seconds, walks=[walk], seed=3
    )
    writers.write_video(scene, path, event_gap_s=5.0)


def write_media(kind: str, path: Path, width: int, height: int, amount: float) -> None:
    """Write one case's media in a subprocess (see the module docstring); ``amount``:
    photos in the burst, or seconds of video."""
    command = [sys.executable, __file__, "--write", kind, str(path), str(width), str(height)]
    subprocess.run([*command, str(amount)], check=True)


def measure(
    code: Path, media: Path, db: Path, existing: bool = False
) -> tuple[float, float, dict[str, int]]:
    """Run ``process`` from the tree ``code`` on ``media``: (peak RSS MiB, seconds, counts);
    ``existing``: on a database made beforehand by another process."""
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1")
    env.pop("TRAPCOUNT_MODEL", None)
    if existing:
        make = "import sys; from edge_agent.store.database import Store; Store.open(sys.argv[1])"
        subprocess.run([sys.executable, "-c", make, str(db)], cwd=code, env=env, check=True)
    command = [sys.executable, "-m", "edge_agent.cli", "process", str(media), "--db", str(db)]
    command += ["--model", str(code / "models" / "default")]
    started = time.perf_counter()
    with open(db.with_suffix(".log"), "wb") as log:
        child = subprocess.Popen(command, cwd=code, env=env, stdout=log, stderr=log)
        _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        text = db.with_suffix(".log").read_text(errors="replace")
        raise SystemExit(f"process failed in {code}:\n{text[-2000:]}")
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT label, SUM(max_n) FROM observations GROUP BY label")
        counts = {label: int(n) for label, n in rows}
    return usage.ru_maxrss / 1024, seconds, counts


@contextlib.contextmanager
def worktree(rev: str, where: Path) -> Iterator[Path]:
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


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) or "nothing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--huge", action="store_true", help="also a burst of 48 MP photos")
    parser.add_argument("--burst", type=int, default=5, help="photos per burst")
    parser.add_argument("--video-seconds", type=float, default=20.0, help="1080p clip length")
    parser.add_argument(
        "--existing-db", action="store_true", help="process into databases made beforehand"
    )
    parser.add_argument("--keep", type=Path, help="write the media here and keep them")
    parser.add_argument("--write", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write:
        kind, path, width, height, amount = args.write
        if kind == "photos":
            write_photos(Path(path), int(width), int(height), int(float(amount)))
        elif kind == "timelapse":
            write_time_lapse(Path(path), int(width), int(height), float(amount))
        else:
            write_video(Path(path), int(width), int(height), float(amount))
        return 0

    with tempfile.TemporaryDirectory(prefix="trapcount-mem-") as tmp:
        media_root = args.keep or Path(tmp) / "media"
        media_root.mkdir(parents=True, exist_ok=True)
        empty = media_root / "empty"
        empty.mkdir(exist_ok=True)
        cases: list[tuple[str, Path]] = [("start-up only (an empty folder)", empty)]
        n = args.burst
        sizes = [(f"photos 12 MP ({n}x 4000x3000 JPEG)", 4000, 3000)]
        if args.huge:
            sizes.append((f"photos 48 MP ({n}x 8000x6000 JPEG)", 8000, 6000))
        for name, width, height in sizes:
            folder = media_root / f"photos-{n}x{width}x{height}"
            if not folder.exists():
                write_media("photos", folder, width, height, n)
            cases.append((name, folder))
        video = media_root / f"video-1920x1080-{args.video_seconds:g}s.mp4"
        if not video.exists():
            write_media("video", video, 1920, 1080, args.video_seconds)
        cases.append((f"video 1080p ({args.video_seconds:g} s at 10 fps, mp4v)", video))
        time_lapse = media_root / "time-lapse-1920x1080-60s.mp4"
        if not time_lapse.exists():
            write_media("timelapse", time_lapse, 1920, 1080, 60)
        cases.append(("time-lapse 1080p (60 s at 1 fps, mp4v)", time_lapse))

        trees = [("now", ROOT)]
        stack = contextlib.ExitStack()
        with stack:
            if args.before:
                label = subprocess.run(
                    ["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                before = stack.enter_context(worktree(args.before, Path(tmp) / "before"))
                trees.insert(0, (label, before))
            for _tree_name, code in trees:  # compiled once, as an installed package is
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "edge_agent")])
            results = {}
            for tree_name, code in trees:
                for case, media in cases:
                    db = Path(tmp) / f"{tree_name}-{len(results)}.sqlite"
                    results[tree_name, case] = measure(code, media, db, args.existing_db)
                    rss, seconds, counts = results[tree_name, case]
                    print(
                        f"# {tree_name} {case}: {rss:.0f} MiB, {seconds:.1f} s, {describe(counts)}",
                        file=sys.stderr,
                    )

        into = "databases made beforehand" if args.existing_db else "new databases"
        print(f"\npeak RSS of `trapcount process` into {into} (budget {BUDGET_MIB} MiB)\n")
        header = "| case | " + " | ".join(f"{t} MiB | {t} counts" for t, _ in trees) + " |"
        print(header)
        print("|---|" + "---:|---|" * len(trees))
        for case, _media in cases:
            cells = []
            for tree_name, _code in trees:
                rss, _seconds, counts = results[tree_name, case]
                cells += [f"{rss:.0f}", describe(counts)]
            print(f"| {case} | " + " | ".join(cells) + " |")
        over = [c for c, _ in cases[1:] if results[trees[-1][0], c][0] > BUDGET_MIB]
        if len(trees) > 1:
            changed = [c for c, _ in cases if results[trees[0][0], c][2] != results["now", c][2]]
            if changed:
                print(f"\ncounts changed: {'; '.join(changed)}")
        if over:
            print(f"\nover {BUDGET_MIB} MiB: {'; '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
