"""Two traps' databases with known events, built through the real Store API.

Trap "meadow" is in Europe/Berlin (UTC+2 in June), trap "canyon" in America/Denver
(UTC-6 in June). Several events sit on either side of a local midnight, so that a report
by local day differs from one by UTC day. ``TRUTH`` is the hand-computed answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.config import TrapSettings
from edge_agent.counting.events import ClosedEvent, LabelObservation
from edge_agent.manifest import Manifest, TensorSpec
from edge_agent.store.database import Store

LABELS = ["airplane", "automobile", "bird", "boar", "cat", "deer", "fox", "person", "unknown"]
SHA_OLD = "a1" * 32
SHA_NEW = "b2" * 32


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Planned:
    start: str  # UTC
    counts: dict[str, int]  # label -> MaxN
    seconds: float = 42.5
    confidence: float = 0.81
    sha: str = SHA_NEW


MEADOW = TrapSettings(
    id="meadow",
    location_name="Meadow by the brook",
    latitude=52.5163,
    longitude=13.3777,
    camera_model="Reolink RLC-510A",
    timezone="Europe/Berlin",
)
CANYON = TrapSettings(
    id="canyon",
    location_name="",
    latitude=39.7392,
    longitude=-104.9903,
    camera_model="Raspberry Pi Camera Module 3",
    timezone="America/Denver",
)

MEADOW_EVENTS = [
    Planned("2024-06-01T21:30:00", {"deer": 2, "fox": 1}, sha=SHA_OLD),  # 23:30 local, Jun 1
    Planned("2024-06-01T22:30:00", {"deer": 3}, confidence=0.93),  # 00:30 local, Jun 2
    Planned("2024-06-02T10:00:00", {"person": 1}),  # 12:00 local, Jun 2
    Planned("2024-06-08T04:15:00", {"boar": 4}, confidence=0.66),  # 06:15 local, Jun 8 (W23)
]
CANYON_EVENTS = [
    Planned("2024-06-02T05:30:00", {"deer": 1}),  # 23:30 local, Jun 1
    Planned("2024-06-02T06:30:00", {"deer": 2, "unknown": 1}, confidence=0.55),  # 00:30, Jun 2
    Planned("2024-06-03T05:59:00", {"automobile": 1}),  # 23:59 local, Jun 2
    Planned("2024-06-03T18:00:00", {"fox": 2}, seconds=3.25),  # 12:00 local, Jun 3 (W23)
]

TRUTH = {
    "meadow": {"deer": 5, "fox": 1, "person": 1, "boar": 4},
    "canyon": {"deer": 3, "unknown": 1, "automobile": 1, "fox": 2},
    "combined": {"deer": 8, "fox": 3, "person": 1, "boar": 4, "unknown": 1, "automobile": 1},
    # Per local day, both traps together: {day: {label: (events, count)}}.
    "by_day": {
        "2024-06-01": {"deer": (2, 3), "fox": (1, 1)},
        "2024-06-02": {"deer": (2, 5), "person": (1, 1), "unknown": (1, 1), "automobile": (1, 1)},
        "2024-06-03": {"fox": (1, 2)},
        "2024-06-08": {"boar": (1, 4)},
    },
    # The same per UTC day, which a report must NOT give.
    "by_utc_day": {
        "2024-06-01": {"deer": 5, "fox": 1},
        "2024-06-02": {"person": 1, "deer": 3, "unknown": 1},
        "2024-06-03": {"automobile": 1, "fox": 2},
        "2024-06-08": {"boar": 4},
    },
    "by_week": {
        "2024-W22": {"deer": 8, "fox": 1, "person": 1, "unknown": 1, "automobile": 1},
        "2024-W23": {"fox": 2, "boar": 4},
    },
}


def manifest(sha: str, arch: str) -> Manifest:
    return Manifest(
        labels=LABELS,
        input=TensorSpec([-1, 32, 32, 3], "uint8", 1.0, 0),
        output=TensorSpec([-1, len(LABELS)], "uint8", 1 / 256, 0),
        sha256=sha,
        arch=arch,
        accuracy={"float": 0.9, "int8": 0.884},
    )


def closed_event(plan: Planned) -> ClosedEvent:
    start = utc(plan.start)
    return ClosedEvent(
        start=start,
        end=start + timedelta(seconds=plan.seconds),
        frames=int(plan.seconds * 8),
        observations=tuple(
            LabelObservation(
                label=label,
                max_n=n,
                frames=12 * n,
                mean_confidence=plan.confidence,
                tracks=n + 1,
            )
            for label, n in sorted(plan.counts.items())
        ),
        model_sha256=plan.sha,
    )


def build_trap_db(
    path: Path,
    trap: TrapSettings,
    events: list[Planned],
    *,
    heartbeat_every: timedelta = timedelta(hours=2),
    heartbeat_gap: tuple[str, str] | None = None,
    free_disk_gb: float = 24.0,
) -> Path:
    """A trap's database: its deployment, two model versions, the events, heartbeats
    from the first event's day to the last's (minus ``heartbeat_gap``), a roll-up."""
    with Store.open(path) as store:
        first = min(utc(e.start) for e in events)
        last = max(utc(e.start) for e in events)
        store.register_model(manifest(SHA_OLD, "seed"), now=first - timedelta(days=3))
        store.register_model(manifest(SHA_NEW, "resnet8"), now=first - timedelta(days=1))
        deployment = store.ensure_deployment(trap, now=first - timedelta(hours=6))
        for plan in events:
            store.write_event(
                closed_event(plan), deployment, now=utc(plan.start) + timedelta(minutes=2)
            )
        gap = (utc(heartbeat_gap[0]), utc(heartbeat_gap[1])) if heartbeat_gap else None
        t = first - timedelta(hours=4)
        disk = free_disk_gb * 1e9
        while t <= last + timedelta(hours=4):
            if gap is None or not gap[0] < t < gap[1]:
                store.write_heartbeat(
                    deployment,
                    time=t,
                    frames=1000,
                    fps=4.5,
                    open_events=0,
                    model_sha256=SHA_NEW,
                    free_disk_bytes=int(disk),
                    cpu_temp_c=51.0,
                    capturing=True,
                )
            disk -= 0.05e9
            t += heartbeat_every
        store.rollup(minutes=15)
    return path


def build_two_traps(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    meadow = build_trap_db(
        folder / "meadow.sqlite",
        MEADOW,
        MEADOW_EVENTS,
        heartbeat_gap=("2024-06-04T01:00:00", "2024-06-05T09:00:00"),
    )
    canyon = build_trap_db(folder / "canyon.sqlite", CANYON, CANYON_EVENTS, free_disk_gb=9.0)
    return meadow, canyon
