"""Report time: the trap's own clock. Periods (hour, day, ISO week) and ``--since`` /
``--until`` bounds are local to each trap's time zone; times print as ISO 8601 with the
trap's UTC offset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("hour", "day", "week")
# Local bounds are resolved per trap; a query first takes this much more on each side.
# Local bounds are resolved per trap; a query first takes this much more on each side.
_WIDEST_OFFSET = timedelta(hours=26)


@lru_cache(maxsize=64)
def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC for a name this system does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_iso(value: datetime | None, zone: str = "UTC") -> str | None:
    """``value`` (aware) as ISO 8601 in ``zone``, with its offset, to the second."""
    if value is None:
        return None
    precision = "milliseconds" if value.microsecond else "seconds"
    return value.astimezone(zone_of(zone)).isoformat(timespec=precision)


def camtrap_time(value: datetime | None, zone: str, *, round_up: bool = False) -> str:
    """``value`` in ``zone`` as ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (whole seconds, Camtrap DP's
    ``%Y-%m-%dT%H:%M:%S%z``): rounded down, or up with ``round_up``; "" for None."""
    if value is None:
        return ""
    if round_up and value.microsecond:
        value = value + timedelta(seconds=1)
    local = value.astimezone(zone_of(zone)).replace(microsecond=0)
    return local.isoformat(timespec="seconds")


@dataclass(frozen=True)
class TimeBound:
    """A ``--since``/``--until`` bound: one instant for every trap, or a wall-clock time
    (a naive ``local``) that each trap reads in its own time zone."""

    instant: datetime | None = None
    local: datetime | None = None

    def at(self, zone: str) -> datetime:
        """The bound as a UTC instant for a trap in ``zone``."""
        if self.instant is not None:
            return self.instant.astimezone(UTC)
        assert self.local is not None
        return self.local.replace(tzinfo=zone_of(zone)).astimezone(UTC)

    def describe(self) -> str:
        if self.instant is not None:
            return self.instant.isoformat()
        assert self.local is not None
        return f"{self.local.isoformat()} (each trap's local time)"

    @classmethod
    def of(cls, value: datetime | TimeBound | None) -> TimeBound | None:
        if value is None or isinstance(value, TimeBound):
            return value
        if value.tzinfo is None:
            return cls(local=value)
        return cls(instant=value)


def parse_bound(text: str, *, end: bool = False) -> TimeBound:
    """A date (YYYY-MM-DD: the trap's local day; as an end bound the whole day is included)
    or an ISO 8601 time (with an offset: an instant; without: the trap's local time)."""
    text = text.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, time())
        return TimeBound(local=start + timedelta(days=1) if end else start)
    parsed = datetime.fromisoformat(text)  # ValueError for the caller to word
    return TimeBound.of(parsed)  # type: ignore[return-value]


@dataclass(frozen=True)
class Window:
    """Events starting in [since, until), each bound read in the event's trap's zone."""

    since: TimeBound | None = None
    until: TimeBound | None = None

    def coarse(self) -> tuple[datetime | None, datetime | None]:
        """UTC bounds wide enough for every zone, for the database query."""
        since = until = None
        if self.since is not None:
            since = self.since.at("UTC")
            if self.since.local is not None:
                since -= _WIDEST_OFFSET
        if self.until is not None:
            until = self.until.at("UTC")
            if self.until.local is not None:
                until += _WIDEST_OFFSET
        return since, until

    def contains(self, value: datetime, zone: str) -> bool:
        if self.since is not None and value < self.since.at(zone):
            return False
        return not (self.until is not None and value >= self.until.at(zone))

    def describe(self) -> dict[str, str | None]:
        return {
            "since": self.since.describe() if self.since else None,
            "until": self.until.describe() if self.until else None,
        }


def period_of(value: datetime, zone: str, period: str) -> str:
    """The local hour ("2024-06-01T05:00+02:00"), day ("2024-06-01") or ISO week
    ("2024-W22") holding ``value`` at a trap in ``zone``."""
    local = value.astimezone(zone_of(zone))
    if period == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
