"""What the review page shows: the kept crops grouped by event into cards, filtered, sorted
and cut into pages (``office.review`` serves them).

A **card** is an event: every crop and record of it a reviewer may see, each with the full
frame it was cut from where one was kept (the box drawn on it), the event's time in its
trap's zone, the machine's counts and, once reviewed, the reviewer's. A crop whose event
is gone (or was never recorded) is a card of its own. People's media is never on a card,
nor blurred crops (neither is exported).

Filters (all optional, from the page's query string): ``label`` (a crop predicted or
reviewed as it), ``conf_min``/``conf_max`` (a crop's confidence within), ``since``/``until``
(the trap's local dates, inclusive), ``status`` (``unreviewed``: a crop still undecided;
``reviewed``: none), ``disagree`` (``model``: the classifier's votes on a track disagreed;
``reviewer``: a reviewer changed a machine label). ``sort``: ``hard`` (by predicted label,
disagreeing and least confident first: the old page's order), ``time`` or ``newest``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from edge_agent.office.windows import zone_of
from edge_agent.store.database import Store
from edge_agent.store.models import Deployment, Event, Media
from edge_agent.store.queries import EMPTY, effective_rows
from edge_agent.store.reviews import reviewable

PERSON = "person"
SORTS = ("hard", "time", "newest")
STATUSES = ("all", "unreviewed", "reviewed")
DISAGREEMENTS = ("", "model", "reviewer")
PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20


def is_person(row: Media) -> bool:
    return row.label == PERSON or row.reviewed_label == PERSON


def hard_first(row: Media) -> tuple[int, float, int]:
    return (0 if row.disagreed else 1, float(row.confidence), row.id)


@dataclass
class Item:
    """A crop (or the record of a withheld track) and the frame it was cut from."""

    crop: Media
    frame: Media | None
    zone: str = "UTC"

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        c = self.crop
        if None in (c.box_x, c.box_y, c.box_w, c.box_h):
            return None
        return (int(c.box_x), int(c.box_y), int(c.box_w), int(c.box_h))  # type: ignore[arg-type]

    @property
    def local_time(self) -> datetime:
        return self.crop.time.astimezone(zone_of(self.zone))


@dataclass
class Card:
    """An event's crops (or one crop without an event), and what the page says of it."""

    event_id: int | None
    items: list[Item]
    trap_id: str = ""
    zone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    machine: list[tuple[str, int]] = field(default_factory=list)  # (label, MaxN)
    counts: list[tuple[str, int]] = field(default_factory=list)  # as reports count now
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"e{self.event_id}" if self.event_id is not None else f"m{self.items[0].crop.id}"

    @property
    def when(self) -> datetime:
        return self.start or self.items[0].crop.time

    def local(self, value: datetime | None = None) -> datetime:
        return (value or self.when).astimezone(zone_of(self.zone))

    def stamp(self, value: datetime | None = None, *, date: bool = True) -> str:
        """A time on the trap's clock with its zone: ``2026-05-01 08:00:01 CEST``."""
        local = self.local(value)
        return f"{local:%Y-%m-%d %H:%M:%S}" if date else f"{local:%H:%M:%S}"

    @property
    def zone_label(self) -> str:
        """``CEST, UTC+02:00, Europe/Zurich``: the zone of the card's times."""
        local = self.local()
        offset = local.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
        name = local.tzname() or ""
        parts = [name] if name and not name.startswith(("+", "-")) and name != "UTC" else []
        return ", ".join([*parts, offset, *([self.zone] if self.zone != "UTC" else [])])

    @property
    def main_label(self) -> str:
        return min(self.items, key=lambda i: hard_first(i.crop)).crop.label

    @property
    def decided(self) -> int:
        return sum(1 for i in self.items if i.crop.reviewed_label)

    @property
    def done(self) -> bool:
        return self.decided == len(self.items)

    @property
    def reviewed(self) -> bool:
        return self.reviewed_by is not None

    def hardness(self) -> tuple[int, float, int]:
        return min(hard_first(i.crop) for i in self.items)


@dataclass(frozen=True)
class Filters:
    label: str = ""
    conf_min: float | None = None
    conf_max: float | None = None
    since: date | None = None
    until: date | None = None
    status: str = "all"
    disagree: str = ""
    sort: str = "hard"
    per: int = DEFAULT_PAGE_SIZE
    page: int = 1

    KEYS = ("label", "conf_min", "conf_max", "since", "until", "status", "disagree", "sort", "per")

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> tuple[Filters, list[str]]:
        """Filters from a query string; a value that cannot be one is dropped and named."""
        problems: list[str] = []

        def number(key: str) -> float | None:
            text = (args.get(key) or "").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                problems.append(f"{key}: not a number")
                return None
            if not math.isfinite(value) or not 0 <= value <= 1:
                problems.append(f"{key}: a confidence is between 0 and 1")
                return None
            return value

        def day(key: str) -> date | None:
            text = (args.get(key) or "").strip()
            if not text:
                return None
            try:
                return date.fromisoformat(text)
            except ValueError:
                problems.append(f"{key}: not a date (YYYY-MM-DD)")
                return None

        def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
            value = (args.get(key) or default).strip()
            if value not in allowed:
                problems.append(f"{key}: one of {', '.join(a or 'any' for a in allowed)}")
                return default
            return value

        def whole(key: str, default: int, allowed: tuple[int, ...] | None = None) -> int:
            text = (args.get(key) or "").strip()
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                problems.append(f"{key}: not a whole number")
                return default
            if allowed is not None and value not in allowed:
                problems.append(f"{key}: one of {', '.join(map(str, allowed))}")
                return default
            return max(value, 1)

        filters = cls(
            label=(args.get("label") or "").strip().lower()[:64],
            conf_min=number("conf_min"),
            conf_max=number("conf_max"),
            since=day("since"),
            until=day("until"),
            status=choice("status", STATUSES, "all"),
            disagree=choice("disagree", DISAGREEMENTS, ""),
            sort=choice("sort", SORTS, "hard"),
            per=whole("per", DEFAULT_PAGE_SIZE, PAGE_SIZES),
            page=min(whole("page", 1), 10**6),
        )
        return filters, problems

    def args(self, **changes: Any) -> dict[str, str]:
        """The query-string arguments that differ from the defaults (for links and
        redirects), with ``changes`` applied."""
        current = replace(self, **changes)
        default = Filters()
        out = {}
        for key in (*self.KEYS, "page"):
            value = getattr(current, key)
            if value != getattr(default, key) and value is not None:
                out[key] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    @property
    def active(self) -> bool:
        return any(
            getattr(self, key) != getattr(Filters(), key)
            for key in self.KEYS
            if key not in ("sort", "per")
        )

    def keeps(self, card: Card) -> bool:
        crops = [i.crop for i in card.items]
        if self.label and not any(self.label in (c.label, c.reviewed_label) for c in crops):
            return False
        if self.conf_min is not None and not any(c.confidence >= self.conf_min for c in crops):
            return False
        if self.conf_max is not None and not any(c.confidence <= self.conf_max for c in crops):
            return False
        day = card.local().date()
        if (self.since and day < self.since) or (self.until and day > self.until):
            return False
        if self.status == "unreviewed" and card.done:
            return False
        if self.status == "reviewed" and not card.done:
            return False
        if self.disagree == "model" and not any(c.disagreed for c in crops):
            return False
        changed = any(c.reviewed_label and c.reviewed_label != c.label for c in crops)
        return not (self.disagree == "reviewer" and not changed)


def load_cards(store: Store) -> list[Card]:
    """Every card, unsorted and without their counts (:func:`add_counts` for a page)."""
    with store.read() as session:
        media = list(
            session.scalars(
                select(Media)
                .where(Media.kind.in_(("crop", "frame", "record")))
                .order_by(Media.time, Media.id)
            )
        )
        zones = dict(session.execute(select(Deployment.id, Deployment.timezone)).all())
        traps = dict(session.execute(select(Deployment.id, Deployment.trap_id)).all())
        event_ids = {m.event_id for m in media if m.event_id is not None}
        events = (
            {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(event_ids)))}
            if event_ids
            else {}
        )
    frames = {(m.event_id, m.time, m.label): m for m in media if m.kind == "frame"}
    cards: dict[Any, Card] = {}
    for crop in media:
        if crop.kind == "frame" or is_person(crop) or not reviewable(crop):
            continue
        frame = frames.get((crop.event_id, crop.time, crop.label))
        zone = zones.get(crop.deployment_id, "UTC")
        item = Item(crop, frame if frame is not None and not is_person(frame) else None, zone)
        event = events.get(crop.event_id) if crop.event_id is not None else None
        key: Any = crop.event_id if event is not None else ("crop", crop.id)
        card = cards.get(key)
        if card is None:
            card = cards[key] = Card(
                event_id=event.id if event is not None else None,
                items=[],
                trap_id=traps.get(crop.deployment_id, ""),
                zone=zone,
                start=event.start if event is not None else None,
                end=event.end if event is not None else None,
            )
        card.items.append(item)
    for card in cards.values():
        card.items.sort(key=lambda i: hard_first(i.crop))
    return list(cards.values())


def sort_cards(cards: list[Card], how: str) -> list[Card]:
    if how == "time":
        return sorted(cards, key=lambda c: (c.when, c.key))
    if how == "newest":
        return sorted(cards, key=lambda c: (c.when, c.key), reverse=True)
    return sorted(cards, key=lambda c: (c.main_label, *c.hardness()))


def add_counts(store: Store, cards: list[Card]) -> None:
    """The machine's counts and the current ones (as reports read them) of these cards'
    events, and who reviewed them."""
    ids = [c.event_id for c in cards if c.event_id is not None]
    if not ids:
        return
    rows = store.event_rows(event_ids=ids)
    machine: dict[int, list[tuple[str, int]]] = {}
    for row in effective_rows(rows, "machine"):
        machine.setdefault(row.event_id, []).append((row.label, row.max_n))
    current: dict[int, list[Any]] = {}
    for row in effective_rows(rows, "reviewed"):
        current.setdefault(row.event_id, []).append(row)
    for card in cards:
        if card.event_id is None:
            continue
        card.machine = machine.get(card.event_id, [])
        found = current.get(card.event_id, [])
        card.counts = [(r.label, r.max_n) for r in found]
        reviewed = [r for r in found if r.counted_by != "machine"]
        if reviewed:
            card.reviewed_by, card.reviewed_at = reviewed[0].reviewed_by, reviewed[0].reviewed_at


@dataclass
class Page:
    cards: list[Card]
    number: int
    pages: int
    matching: int  # cards that pass the filters
    matching_crops: int


def page_of(cards: list[Card], filters: Filters, at: int | None = None) -> Page:
    """The page of the filtered, sorted cards: ``filters.page``, or the one holding the
    crop ``at`` when it passes the filters."""
    kept = sort_cards([c for c in cards if filters.keeps(c)], filters.sort)
    pages = max(1, math.ceil(len(kept) / filters.per))
    number = min(filters.page, pages)
    if at is not None:
        for index, card in enumerate(kept):
            if any(i.crop.id == at for i in card.items):
                number = index // filters.per + 1
                break
    begin = (number - 1) * filters.per
    return Page(
        cards=kept[begin : begin + filters.per],
        number=number,
        pages=pages,
        matching=len(kept),
        matching_crops=sum(len(c.items) for c in kept),
    )


def next_undecided(cards: list[Card], filters: Filters, after: int) -> int | None:
    """The next crop still undecided after crop ``after`` in the page order (wrapping)."""
    order = [
        (i.crop.id, bool(i.crop.reviewed_label))
        for c in sort_cards([c for c in cards if filters.keeps(c)], filters.sort)
        for i in c.items
    ]
    ids = [i for i, _ in order]
    cut = ids.index(after) + 1 if after in ids else 0
    return next((i for i, done in order[cut:] + order[:cut] if not done), None)


def known_labels(cards: list[Card]) -> list[str]:
    """Labels to offer: predicted and reviewed ones, without empty, person and unknown."""
    labels = {i.crop.label for c in cards for i in c.items}
    labels |= {i.crop.reviewed_label for c in cards for i in c.items if i.crop.reviewed_label}
    return sorted(labels - {EMPTY, PERSON, "unknown"})
