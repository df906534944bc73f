"""Sampling effort: how long each trap was watching, and the relative abundance index.

**A trap-day** is 24 hours during which a trap was running, whenever they fell: 36 hours
of running are 1.5 trap-days. Camera-trap studies call the same unit a trap-night (or a
camera-day); here the two are one.

**Running** comes from the heartbeats: ``trapcount run`` writes one every
``service.heartbeat_s`` while it counts. The time between two consecutive heartbeats is
running time, unless it is a gap (more than three usual intervals, and more than a minute
beyond one: the rule of the report's trap health), when the trap was off, crashed or had
no power and counted nothing. The time before a trap's first heartbeat and after its last
in the period is not counted.

**Without heartbeats** (footage counted afterwards with ``trapcount process``, which writes
none), the effort is the span of the footage the events were found in: from the first
event's start to the last event's end in the period. The footage's own first and last
frames are not stored, so this is a lower bound; the report says which of the two it used.

**Detections per 100 trap-nights** (the relative abundance index, RAI) of a label: its
independent detections, the events with that label (an event ends after
``events.event_gap_s`` without an animal, so one animal lingering is one detection), per
100 trap-days of effort: ``100 * events / trap-days``, over the traps with effort.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from edge_agent.office.report_data import ReportData

DAY_S = 86400.0
HEARTBEATS, FOOTAGE, NONE = "heartbeats", "footage", "none"


def gap_limit(usual_s: float) -> float:
    """Longer than this between two heartbeats is a gap (as in the report's trap health)."""
    return max(3 * usual_s, usual_s + 60)


@dataclass(frozen=True)
class Effort:
    """One trap's effort in the period."""

    trap: str
    source: str  # heartbeats, footage (first to last event) or none
    first: datetime | None
    last: datetime | None
    seconds: float  # running time
    gaps: int = 0  # heartbeat gaps left out
    gap_seconds: float = 0.0
    outside: int = 0  # events that started in no covered stretch (a gap, before, after)

    @property
    def trap_days(self) -> float:
        return self.seconds / DAY_S


def covered_stretches(times: list[datetime]) -> tuple[list[tuple[datetime, datetime]], int]:
    """The stretches between consecutive heartbeats that are not gaps (joined where they
    touch), and how many gaps were left out. ``times``: sorted."""
    steps = [(b - a).total_seconds() for a, b in pairwise(times)]
    if not steps:
        return [], 0
    limit = gap_limit(statistics.median(steps))
    stretches: list[tuple[datetime, datetime]] = []
    gaps = 0
    for (a, b), step in zip(pairwise(times), steps, strict=True):
        if step > limit:
            gaps += 1
        elif stretches and stretches[-1][1] == a:
            stretches[-1] = (stretches[-1][0], b)
        else:
            stretches.append((a, b))
    return stretches, gaps


def trap_effort(data: ReportData) -> list[Effort]:
    """Each trap's effort in the data's period, from its heartbeats, else its footage."""
    starts: dict[str, list[datetime]] = defaultdict(list)
    ends: dict[str, list[datetime]] = defaultdict(list)
    for row in data.rows:
        starts[row.deployment.trap_id].append(row.start)
        ends[row.deployment.trap_id].append(row.end)
    traps = sorted(set(data.heartbeats) | set(starts))
    efforts = []
    for trap in traps:
        times = sorted(beat["time"] for beat in data.heartbeats.get(trap, []))
        if len(times) >= 2:
            stretches, gaps = covered_stretches(times)
            seconds = sum((b - a).total_seconds() for a, b in stretches)
            outside = sum(
                1 for start in set(starts[trap]) if not any(a <= start <= b for a, b in stretches)
            )
            efforts.append(
                Effort(
                    trap,
                    HEARTBEATS,
                    times[0],
                    times[-1],
                    seconds,
                    gaps,
                    (times[-1] - times[0]).total_seconds() - seconds,
                    outside,
                )
            )
        elif starts[trap]:
            first, last = min(starts[trap]), max(ends[trap])
            efforts.append(Effort(trap, FOOTAGE, first, last, (last - first).total_seconds()))
        else:
            efforts.append(Effort(trap, NONE, None, None, 0.0))
    return efforts


def detection_rates(data: ReportData, efforts: list[Effort]) -> list[dict[str, Any]]:
    """Per label: its events (independent detections) and events per 100 trap-days, over
    all traps with effort (``rate``) and per trap (``per_trap``: {trap: rate or None})."""
    days = {e.trap: e.trap_days for e in efforts}
    events: dict[str, dict[str, set[tuple[str, int]]]] = defaultdict(lambda: defaultdict(set))
    for row in data.rows:
        key = (row.deployment.key, row.event_id)
        events[row.label][row.deployment.trap_id].add(key)
    total_days = sum(d for d in days.values() if d > 0)
    rates = []
    for label in sorted(events, key=lambda lb: (lb == "unknown", lb)):
        per_trap = events[label]
        counted = sum(len(keys) for trap, keys in per_trap.items() if days.get(trap, 0) > 0)
        rates.append(
            {
                "label": label,
                "events": sum(len(keys) for keys in per_trap.values()),
                "rate": 100 * counted / total_days if total_days > 0 else None,
                "per_trap": {
                    trap: (100 * len(per_trap.get(trap, ())) / d if d > 0 else None)
                    for trap, d in sorted(days.items())
                },
            }
        )
    return rates
