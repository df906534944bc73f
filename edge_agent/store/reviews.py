"""Reviewed counts, the writer: a reviewer's decisions on kept crops, or on a whole event,
become the event's observations (revision 0008's ``reviewed_*`` columns), beside the
machine's label and MaxN, which are never overwritten. Readers follow one rule
(``queries.effective_rows``, ``queries.event_counts``); docs/reports.md ("Reviewed counts")
states both for people.

**Inputs.** A decision on a crop sets ``media.reviewed_label`` (the crop's track is that
label, ``empty``: not an animal). A decision on an event sets it on every crop and record of
the event a reviewer can see, and may give a count for a label (the reviewer's number). A
crop a reviewer cannot see (a person's, a blurred one) keeps its machine label.

**When.** An event's observations change once every crop and record of it that a reviewer
can see has a decision: until then its counts stay the machine's. An event none of whose
tracks kept an image is never reviewed here.

**Rules**, per machine observation (label L, MaxN M, its tracks) and its kept crops:

- every crop decided one label X: the whole observation is X with MaxN M (``empty``: 0);
- crops decided differently (a split): each label gets ``min(M, its tracks)``, tracks
  without a kept crop staying L (an upper bound: the reviewer's count corrects it);
- no kept crop: it follows the event when every crop of the event got one label, else
  it keeps L.

Observations of one event that end with the same label merge: the **largest** of their MaxN
(MaxN is the fewest animals certainly there together; adding two observations could count
one animal twice, a track broken in two and classified twice). A count the reviewer gave
for a label wins over all of this, and survives later decisions while the label stays in
the event. A label left with count 0 is dropped; an event left with nothing is ``empty``.

**Storage.** Every row of a reviewed event gets ``reviewed_by``/``reviewed_at``. Each
resulting label is held by one row (the machine's row of that label, else a row added for
it with ``max_n`` = ``tracks`` = 0, since rows are unique per event and machine label) with
the count; every other row names where its own tracks went, with count 0. So a reader sums
``reviewed_count`` per event and reviewed label. The roll-up of the events' intervals is
redone after each decision, with the interval length the database already uses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edge_agent.store.database import Store
from edge_agent.store.models import (
    Count,
    Event,
    Media,
    Observation,
    as_utc,
    interval_floor,
    utc_now,
)
from edge_agent.store.queries import EMPTY, chunked, is_machine_row

PERSON = "person"
ACTIONS = ("confirm", "empty", "relabel")
REVIEWED_KINDS = ("crop", "record")  # a track's kept crop, or the record of a withheld one
MAX_COUNT = 10_000  # more animals than any camera sees in one frame: a typing slip
UPDATE_CHUNK = 500  # media ids per UPDATE (SQLite's bound-parameter limit)


class ReviewRefused(ValueError):
    """A decision that cannot be taken (one line for the reviewer)."""


def reviewable(row: Media) -> bool:
    """Whether a reviewer may decide on this media row: a crop or record, not of a person
    (as predicted), not blurred (neither is shown on the review page)."""
    if row.kind not in REVIEWED_KINDS or row.label == PERSON:
        return False
    return not (row.kind == "crop" and row.privacy_status == "blurred")


def decided_label(row: Media) -> str | None:
    """The label a crop's track has now: the reviewer's, the machine's for a crop a
    reviewer cannot see, None when still undecided."""
    if row.reviewed_label:
        return row.reviewed_label
    return None if reviewable(row) else row.label


@dataclass(frozen=True)
class Outcome:
    """What a decision changed: the events whose observations were (re)written, and those
    still waiting for decisions on some of their crops."""

    reviewed: tuple[int, ...] = ()
    waiting: tuple[int, ...] = ()


def decide_crops(
    store: Store,
    ids: list[int],
    action: str,
    label: str | None = None,
    *,
    reviewer: str,
    now: datetime | None = None,
) -> Outcome:
    """One decision on the media rows ``ids`` (crops or records) in ONE transaction:
    ``confirm`` (the predicted label becomes the reviewed one), ``empty``, or ``relabel``
    to ``label``; then the observations of their events, where complete."""
    if action not in ACTIONS:
        raise ReviewRefused(f"unknown decision {action!r}")
    if action == "relabel" and not label:
        raise ReviewRefused("relabel needs a label")
    new = Media.label if action == "confirm" else EMPTY if action == "empty" else label
    when = as_utc(now or utc_now())
    with store.write() as session:
        events: set[int] = set()
        for chunk in chunked(ids, UPDATE_CHUNK):
            session.execute(
                update(Media).where(Media.id.in_(chunk)).values(reviewed_label=new),
                execution_options={"synchronize_session": False},
            )
            events |= set(
                session.scalars(
                    select(Media.event_id).where(Media.id.in_(chunk), Media.event_id.is_not(None))
                )
            )
        outcome = _review_events(session, sorted(events), reviewer, when)
    reroll(store, outcome.reviewed)
    return outcome


def decide_event(
    store: Store,
    event_id: int,
    action: str,
    label: str | None = None,
    count: int | None = None,
    *,
    reviewer: str,
    now: datetime | None = None,
) -> Outcome:
    """One decision on a whole event: every crop and record of it a reviewer can see
    ``confirm``-ed, ``empty`` or ``relabel``-led to ``label``. ``count`` is the reviewer's
    MaxN: of ``label`` (relabel), or of the event's one label (confirm)."""
    if action not in ACTIONS:
        raise ReviewRefused(f"unknown decision {action!r}")
    if action == "relabel" and not label:
        raise ReviewRefused("relabel needs a label")
    if count is not None and not 0 <= count <= MAX_COUNT:
        raise ReviewRefused(f"a count is a whole number from 0 to {MAX_COUNT}")
    if count is not None and action == "empty":
        raise ReviewRefused("an empty event has no count")
    when = as_utc(now or utc_now())
    with store.write() as session:
        crops = [m for m in _media_of(session, event_id) if reviewable(m)]
        if not crops:
            raise ReviewRefused(f"event {event_id} has no crop or record to review")
        for crop in crops:
            crop.reviewed_label = (
                crop.label if action == "confirm" else EMPTY if action == "empty" else label
            )
        # None: the event's one label, once its crops' decisions are known.
        given: dict[str | None, int] = {}
        if count is not None:
            given[label if action == "relabel" else None] = count
        session.flush()
        outcome = _review_events(session, [event_id], reviewer, when, {event_id: given})
    reroll(store, outcome.reviewed)
    return outcome


def _media_of(session: Session, event_id: int) -> list[Media]:
    query = select(Media).where(Media.event_id == event_id, Media.kind.in_(REVIEWED_KINDS))
    return list(session.scalars(query.order_by(Media.id)))


def _review_events(
    session: Session,
    event_ids: Iterable[int],
    reviewer: str,
    when: datetime,
    given: dict[int, dict[str | None, int]] | None = None,
) -> Outcome:
    reviewed, waiting = [], []
    for event_id in event_ids:
        done = review_event(session, event_id, reviewer, when, (given or {}).get(event_id))
        (reviewed if done else waiting).append(event_id)
    return Outcome(tuple(reviewed), tuple(waiting))


def review_event(
    session: Session,
    event_id: int,
    reviewer: str,
    when: datetime,
    given: dict[str | None, int] | None = None,
) -> bool:
    """Rewrite the reviewed columns of the event's observations from its crops' decisions
    and the counts the reviewer gave (``given`` added to those already stored; the key
    None: the event's one label, ReviewRefused when it has several), by the rules in this
    module's docstring. False, and nothing written, while a crop a reviewer can see is
    undecided, or when the event has none."""
    crops = _media_of(session, event_id)
    if not any(reviewable(c) for c in crops):
        return False
    decided = {c.id: decided_label(c) for c in crops}
    if any(label is None for label in decided.values()):
        return False
    rows = list(session.scalars(select(Observation).where(Observation.event_id == event_id)))
    counted = {
        r.reviewed_label: int(r.reviewed_count or 0)
        for r in rows
        if r.reviewed_counted and r.reviewed_label
    }
    machine = [r for r in rows if is_machine_row(r)]
    uniform = set(decided.values())
    everything = str(next(iter(uniform))) if len(uniform) == 1 else None

    shares: dict[str, list[int]] = defaultdict(list)
    own: dict[int, str] = {}
    for row in machine:
        labels = Counter(str(decided[c.id]) for c in crops if c.label == row.label)
        if not labels:  # no kept crop: follow the event when it is one label
            labels = Counter({everything or row.label: row.tracks})
        if len(labels) == 1:
            (target,) = labels
            shares[target].append(0 if target == EMPTY else row.max_n)
        else:  # a split; tracks without a crop keep the machine's label
            unseen = row.tracks - sum(labels.values())
            if unseen > 0:
                labels[row.label] += unseen
            for target, tracks in labels.items():
                shares[target].append(0 if target == EMPTY else min(row.max_n, tracks))
        own[row.id] = max(labels, key=lambda x: (labels[x], x == row.label, x))
    result = {label: max(values) for label, values in shares.items()}
    for label, n in (given or {}).items():
        if label is None:
            animals = [x for x, count in result.items() if count > 0 and x != EMPTY]
            if len(animals) != 1:
                raise ReviewRefused(
                    "this event has several labels: relabel it to the one whose count you give"
                )
            label = animals[0]
        counted[label] = n
    kept_counts = {label: n for label, n in counted.items() if label in result}
    result.update(kept_counts)
    final = {label: n for label, n in result.items() if n > 0 and label != EMPTY} or {EMPTY: 0}

    by_label = {r.label: r for r in rows}
    holders: dict[int, str] = {}
    for label in sorted(final):
        # The row of that label; else a machine row whose tracks went there (a plain
        # relabel stays on its row); else a row added for it.
        row = by_label.get(label) or next(
            (
                r
                for r in machine
                if own[r.id] == label and r.id not in holders and r.label not in final
            ),
            None,
        )
        if row is None:
            row = Observation(
                event_id=event_id,
                label=label,
                max_n=0,
                frames=0,
                mean_confidence=0.0,
                tracks=0,
                suppressed=0,
            )
            session.add(row)
            session.flush()
            rows.append(row)
        holders[row.id] = label
    for row in rows:
        if row.id in holders:
            label = holders[row.id]
            row.reviewed_label, row.reviewed_count = label, final[label]
            row.reviewed_counted = label in kept_counts
        elif not is_machine_row(row):
            session.delete(row)  # added for a label the event no longer has
            continue
        else:
            row.reviewed_label, row.reviewed_count = own[row.id], 0
            row.reviewed_counted = False
        row.reviewed_by, row.reviewed_at = reviewer, when
    session.flush()
    return True


def reroll(store: Store, event_ids: Iterable[int]) -> int:
    """Redo the roll-up of the intervals holding these events' starts, with the interval
    length each deployment's roll-up already has (none yet: the agent's next roll-up will
    count them, reviewed). Returns the rows written."""
    ids = sorted(set(event_ids))
    if not ids:
        return 0
    with store.read() as session:
        starts = session.execute(
            select(Event.deployment_id, Event.start).where(Event.id.in_(ids))
        ).all()
        lengths: dict[int, timedelta] = {}
        for dep_id in {dep for dep, _ in starts}:
            found = session.execute(
                select(Count.interval_start, Count.interval_end)
                .where(Count.deployment_id == dep_id)
                .limit(1)
            ).first()
            if found is not None:
                lengths[dep_id] = found[1] - found[0]
    written = 0
    done: set[tuple[int, datetime]] = set()
    for dep_id, start in starts:
        if dep_id not in lengths:
            continue
        minutes = max(int(lengths[dep_id].total_seconds() // 60), 1)
        if (dep_id, interval_floor(start, minutes)) in done:
            continue
        done.add((dep_id, interval_floor(start, minutes)))
        written += store.rollup(
            since=start,
            until=start + timedelta(microseconds=1),
            minutes=minutes,
            deployment_id=dep_id,
        )
    return written
