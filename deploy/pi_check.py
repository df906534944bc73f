"""The Python half of ``deploy/pi-check.sh`` (``make pi-check``): standard library only, so
it runs with the host's Python and with the arm64 root filesystem's.

    python deploy/pi_check.py config DEMO_TOML > pi-check.toml
    python deploy/pi_check.py versions > versions.json        # with the side's interpreter
    python deploy/pi_check.py compare X86_DIR ARM64_DIR [--names x86_64 arm64]

``config`` turns ``make demo``'s ``demo-out/demo.toml`` into the config both sides run with:
the camera is ``sample.mp4``, the model ``model/`` and the database ``counts.sqlite``, all
beside the config. ``compare`` reads ``report.json`` (``trapcount report --format json``)
and ``versions.json`` from each side's folder, prints them side by side and exits 1 when
the per-label counts (events, count, largest MaxN) differ.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tomllib
from importlib import metadata
from pathlib import Path

# What the check sets in the demo's config: (section, key, TOML value).
SETTINGS = (
    ("source", "uri", '"sample.mp4"'),
    ("classifier", "model_dir", '"model"'),
    ("storage", "db_path", '"counts.sqlite"'),
)
# The distributions whose versions are printed side by side (what decodes, detects,
# classifies and stores).
PACKAGES = (
    "trapcount",
    "numpy",
    "opencv-python-headless",
    "ai-edge-litert",
    "sqlalchemy",
    "pydantic",
    "pillow",
)
COUNT_FIELDS = ("events", "count", "max_n")
EVENT_FIELDS = ("start", "end", "label", "max_n", "tracks")


def set_keys(text: str, settings: tuple[tuple[str, str, str], ...] = SETTINGS) -> str:
    """``text`` (TOML) with each ``section.key`` set to its value: the key's line replaced
    where the section has one, else added at the end of the section, else the section
    appended. Comments and the other keys are kept as they are."""
    wanted = {(section, key): value for section, key, value in settings}
    done: set[tuple[str, str]] = set()
    out: list[str] = []
    section = ""

    def close(section: str) -> None:
        # Insert the keys this section still lacks before its trailing blank lines.
        missing = [k for (s, k) in wanted if s == section and (s, k) not in done]
        blanks = []
        while out and not out[-1].strip():
            blanks.append(out.pop())
        for key in missing:
            out.append(f"{key} = {wanted[(section, key)]}")
            done.add((section, key))
        out.extend(blanks)

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            close(section)
            section = stripped[1:].split("]", 1)[0].strip()
            out.append(line)
            continue
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
        if not stripped.startswith("#") and (section, key) in wanted:
            out.append(f"{key} = {wanted[(section, key)]}")
            done.add((section, key))
            continue
        out.append(line)
    close(section)
    for section, key, value in settings:
        if (section, key) not in done:
            if out and out[-1].strip():
                out.append("")
            out.extend([f"[{section}]", f"{key} = {value}"])
            done.add((section, key))
    result = "\n".join(out) + "\n"
    tomllib.loads(result)  # a config the agent cannot read fails here, not on the Pi
    return result


def versions() -> dict[str, str]:
    """This interpreter's machine, Python and the versions of ``PACKAGES``."""
    found = {"machine": platform.machine(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def per_label(report: dict) -> dict[str, tuple[int, int, int]]:
    """{label: (events, count, largest MaxN)} from ``trapcount report --format json``."""
    return {
        label: tuple(int(row[field]) for field in COUNT_FIELDS)
        for label, row in report.get("labels", {}).items()
    }


def event_rows(report: dict) -> list[tuple]:
    return sorted(tuple(event.get(field) for field in EVENT_FIELDS) for event in report["events"])


def confidence_gap(left: dict, right: dict) -> float | None:
    """The largest difference between the two sides' confidence of the same event (the
    events in the same order), or None when they carry none."""

    def in_order(report: dict) -> list[dict]:
        return sorted(report["events"], key=lambda e: tuple(e.get(f) for f in EVENT_FIELDS))

    pairs = zip(in_order(left), in_order(right), strict=True)
    gaps = [
        abs(float(a["confidence"]) - float(b["confidence"]))
        for a, b in pairs
        if a.get("confidence") is not None and b.get("confidence") is not None
    ]
    return max(gaps) if gaps else None


def compare(
    left: dict, right: dict, names: tuple[str, str], left_versions=None, right_versions=None
) -> tuple[bool, list[str]]:
    """(equal, lines): the two reports' per-label counts side by side, and whether they are
    the same. Events (times, tracks), the model and footage left unprocessed are compared
    too, and a difference is reported, but only the counts decide."""
    lines: list[str] = []
    name_width = max(14, *(len(n) for n in names))
    if left_versions or right_versions:
        left_versions = left_versions or {}
        right_versions = right_versions or {}
        keys = list(dict.fromkeys([*left_versions, *right_versions]))
        width = max(len(k) for k in keys)
        lines.append(f"{'':{width}}  {names[0]:<{name_width}}  {names[1]}")
        for key in keys:
            a, b = left_versions.get(key, "-"), right_versions.get(key, "-")
            lines.append(f"{key:<{width}}  {a:<{name_width}}  {b}")
        lines.append("")

    a, b = per_label(left), per_label(right)
    labels = sorted(set(a) | set(b))
    width = max([5, *(len(label) for label in labels)])
    head = "events count max_n"
    lines.append(f"{'':{width}}  {names[0]:<{len(head)}}   {names[1]}")
    lines.append(f"{'label':<{width}}  {head}   {head}")
    missing = (0, 0, 0)
    equal = True
    for label in labels:
        x, y = a.get(label, missing), b.get(label, missing)
        same = x == y
        equal &= same
        lines.append(
            f"{label:<{width}}  {x[0]:>6} {x[1]:>5} {x[2]:>5}   {y[0]:>6} {y[1]:>5} {y[2]:>5}"
            f"   {'same' if same else 'DIFFERENT'}"
        )
    total_a, total_b = sum(v[1] for v in a.values()), sum(v[1] for v in b.values())
    lines.append(f"{'total':<{width}}  {'':>6} {total_a:>5} {'':>5}   {'':>6} {total_b:>5}")
    if not labels:
        lines.append("(no counts on either side)")

    notes = []
    if event_rows(left) != event_rows(right):
        notes.append("the events differ (start, end, label, MaxN or tracks)")
    else:
        lines.append(f"events: the same {len(left['events'])} (start, end, label, MaxN, tracks)")
        gap = confidence_gap(left, right)
        if gap is not None:
            lines.append(f"largest difference in an event's mean confidence: {gap:.4f}")
    models = [sorted(m.get("sha256", "") for m in r.get("models", [])) for r in (left, right)]
    if models[0] != models[1]:
        notes.append(f"the models differ: {models[0]} vs {models[1]}")
    for name, report in zip(names, (left, right), strict=True):
        if report.get("unprocessed"):
            notes.append(f"{name} left footage unprocessed: {report['unprocessed']}")
    lines.extend(f"note: {note}" for note in notes)
    lines.append(
        "counts: equal" if equal else f"counts: DIFFERENT between {names[0]} and {names[1]}"
    )
    return equal, lines


def read_side(folder: Path) -> tuple[dict, dict | None]:
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    versions_file = folder / "versions.json"
    found = None
    if versions_file.exists():
        found = json.loads(versions_file.read_text(encoding="utf-8"))
    return report, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="the check's config from the demo's")
    config.add_argument("demo_toml", type=Path)
    commands.add_parser("versions", help="this interpreter's package versions as JSON")
    both = commands.add_parser("compare", help="compare two sides' counts")
    both.add_argument("left", type=Path)
    both.add_argument("right", type=Path)
    both.add_argument("--names", nargs=2, default=("x86_64", "arm64"))
    args = parser.parse_args(argv)

    if args.command == "config":
        sys.stdout.write(set_keys(args.demo_toml.read_text(encoding="utf-8")))
        return 0
    if args.command == "versions":
        print(json.dumps(versions(), indent=1))
        return 0
    left, left_versions = read_side(args.left)
    right, right_versions = read_side(args.right)
    equal, lines = compare(left, right, tuple(args.names), left_versions, right_versions)
    print("\n".join(lines))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
