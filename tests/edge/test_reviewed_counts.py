"""Reviewed counts at the store (issue 24): a reviewer's decisions on crops and on whole
events become the events' observations beside the machine's, by the rules of
``edge_agent.store.reviews`` (docs/reports.md, "Reviewed counts"); reports, CSV, JSON and
Camtrap DP read them back; the roll-up follows; fleet sync carries them to PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from edge_agent.cli import cli
from edge_agent.config import TrapSettings
from edge_agent.counting.events import ClosedEvent, LabelObservation
from edge_agent.office.report_data import load
from edge_agent.office.reports import build_report
from edge_agent.store.database import Store
from edge_agent.store.models import Observation
from edge_agent.store.reviews import ReviewRefused, decide_crops, decide_event
from edge_agent.store.sync import parse_url, sync

T0 = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)  # 06:00 in Zurich
REVIEWED_AT = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
TRAP = TrapSettings(id="meadow", timezone="Europe/Zurich", latitude=47.1, longitude=8.2)


class Trap:
    """A trap database with events and their kept crops, as the agent writes them."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.store = Store.open(path)
        self.deployment = self.store.ensure_deployment(TRAP, now=T0 - timedelta(days=1))
        self.n = 0

    def event(self, minutes: float, **observations: tuple[int, int]) -> int:
        """An event ``minutes`` after T0 with label=(MaxN, tracks) observations."""
        start = T0 + timedelta(minutes=minutes)
        closed = ClosedEvent(
            start=start,
            end=start + timedelta(seconds=20),
            frames=200,
            observations=tuple(
                LabelObservation(label, max_n=m, frames=30, mean_confidence=0.8, tracks=t)
                for label, (m, t) in sorted(observations.items())
            ),
            model_sha256=None,
        )
        return self.store.write_event(closed, self.deployment, now=start)

    def crop(self, event: int, label: str, kind: str = "crop", **extra) -> int:
        self.n += 1
        return self.store.add_media(
            deployment_id=self.deployment,
            event_id=event,
            time=T0 + timedelta(seconds=self.n),
            kind=kind,
            path=None if kind == "record" else f"/media/2026-05-01/c{self.n}.jpg",
            sha256="0" * 64,
            bytes=10,
            label=label,
            **{
                "confidence": 0.7,
                "disagreed": False,
                "privacy_status": "suppressed" if kind == "record" else "clear",
                **extra,
            },
        )

    def rows(self, event: int) -> dict[str, tuple]:
        """{machine label: (max_n, tracks, reviewed_label, reviewed_count, counted, by)}."""
        with self.store.read() as session:
            found = session.scalars(select(Observation).where(Observation.event_id == event))
            return {
                o.label: (
                    o.max_n,
                    o.tracks,
                    o.reviewed_label,
                    o.reviewed_count,
                    o.reviewed_counted,
                    o.reviewed_by,
                )
                for o in found
            }

    def counts(self, counts: str = "reviewed") -> dict[int, dict[str, tuple[int, str]]]:
        """{event: {label: (count, counted_by)}} as reports read them."""
        out: dict[int, dict[str, tuple[int, str]]] = {}
        for row in load(self.store, counts=counts).rows:
            out.setdefault(row.event_id, {})[row.label] = (row.max_n, row.counted_by)
        return out

    def crops(self, ids, action, label=None):
        return decide_crops(self.store, ids, action, label, reviewer="ana", now=REVIEWED_AT)


@pytest.fixture
def trap(tmp_path):
    trap = Trap(tmp_path / "trap.sqlite")
    yield trap
    trap.store.close()


def test_relabelling_every_crop_of_an_observation_relabels_it_and_keeps_its_maxn(trap):
    event = trap.event(0, deer=(2, 2))
    crops = [trap.crop(event, "deer"), trap.crop(event, "deer")]
    outcome = trap.crops(crops, "relabel", "fox")
    assert outcome.reviewed == (event,)
    assert trap.rows(event) == {"deer": (2, 2, "fox", 2, False, "ana")}
    assert trap.counts() == {event: {"fox": (2, "reviewer")}}
    assert trap.counts("machine") == {event: {"deer": (2, "machine")}}


def test_an_event_waits_until_every_crop_it_kept_has_a_decision(trap):
    event = trap.event(0, deer=(2, 2))
    first, second = trap.crop(event, "deer"), trap.crop(event, "deer")
    assert trap.crops([first], "relabel", "fox").waiting == (event,)
    assert trap.counts() == {event: {"deer": (2, "machine")}}
    # the second decided the same: the whole observation is a fox
    trap.crops([second], "relabel", "fox")
    assert trap.counts() == {event: {"fox": (2, "reviewer")}}


def test_relabelling_one_of_two_tracks_splits_the_count(trap):
    event = trap.event(0, deer=(2, 2))
    deer, other = trap.crop(event, "deer"), trap.crop(event, "deer")
    trap.crops([deer], "confirm")
    trap.crops([other], "relabel", "fox")
    # each label: min(MaxN, its tracks); the fox is held by a row the machine never had
    assert trap.counts() == {event: {"deer": (1, "reviewer"), "fox": (1, "reviewer")}}
    rows = trap.rows(event)
    assert rows["fox"][:4] == (0, 0, "fox", 1) and rows["deer"][2:4] == ("deer", 1)
    assert trap.counts("machine") == {event: {"deer": (2, "machine")}}  # no fox at all


def test_tracks_without_a_kept_crop_keep_the_machines_label_in_a_split(trap):
    event = trap.event(0, deer=(3, 4))  # 4 tracks, 3 together; 2 crops kept (quota)
    a, b = trap.crop(event, "deer"), trap.crop(event, "deer")
    trap.crops([a], "confirm")
    trap.crops([b], "relabel", "fox")
    # deer: its crop and the two unseen tracks, min(3, 3); fox: min(3, 1)
    assert trap.counts() == {event: {"deer": (3, "reviewer"), "fox": (1, "reviewer")}}


def test_two_observations_reviewed_to_one_label_merge_to_the_larger_maxn(trap):
    event = trap.event(0, deer=(2, 2), fox=(1, 1))
    deer = [trap.crop(event, "deer"), trap.crop(event, "deer")]
    fox = trap.crop(event, "fox")
    trap.crops(deer, "confirm")
    trap.crops([fox], "relabel", "deer")
    assert trap.counts() == {event: {"deer": (2, "reviewer")}}
    rows = trap.rows(event)
    assert rows["deer"][2:4] == ("deer", 2) and rows["fox"][2:4] == ("deer", 0)
    # the reviewer's count wins, on the whole event
    decide_event(trap.store, event, "relabel", "deer", 3, reviewer="ben", now=REVIEWED_AT)
    assert trap.counts() == {event: {"deer": (3, "reviewer")}}
    assert trap.rows(event)["deer"][2:] == ("deer", 3, True, "ben")
    # ... and survives a later decision while deer stays in the event
    trap.crops([deer[0]], "relabel", "hare")
    assert trap.counts() == {event: {"deer": (3, "reviewer"), "hare": (1, "reviewer")}}


def test_an_event_marked_empty_has_no_animal_and_counts_nothing(trap):
    event = trap.event(0, deer=(1, 1))
    other = trap.event(30, fox=(1, 1))
    trap.crop(event, "deer", kind="record")  # a record without an image is a decision too
    trap.crop(other, "fox")
    decide_event(trap.store, event, "empty", reviewer="ana", now=REVIEWED_AT)
    assert trap.counts()[event] == {"empty": (0, "reviewer")}
    assert trap.store.totals() == {"fox": 1}
    report = build_report(load(trap.store))
    assert report["totals"] == {"empty": 0, "fox": 1}
    assert report["reviewed_events"] == 1 and report["counts_from"] == "reviewed"


def test_an_observation_without_a_kept_crop_follows_an_event_of_one_label(trap):
    event = trap.event(0, deer=(2, 2), fox=(1, 1))
    (crop,) = [trap.crop(event, "deer")]  # the fox kept no crop
    trap.crops([crop], "relabel", "boar")
    assert trap.counts() == {event: {"boar": (2, "reviewer")}}
    event2 = trap.event(60, deer=(1, 1), fox=(1, 1), hare=(1, 1))
    d, h = trap.crop(event2, "deer"), trap.crop(event2, "hare")
    trap.crops([d], "confirm")
    trap.crops([h], "relabel", "boar")
    # the crops disagree: the fox without a crop keeps its machine label
    assert trap.counts()[event2] == {
        "boar": (1, "reviewer"),
        "deer": (1, "reviewer"),
        "fox": (1, "reviewer"),
    }


def test_a_count_given_on_confirm_needs_one_label(trap):
    event = trap.event(0, deer=(2, 2), fox=(1, 1))
    trap.crop(event, "deer")
    trap.crop(event, "fox")
    with pytest.raises(ReviewRefused, match="several labels"):
        decide_event(trap.store, event, "confirm", count=4, reviewer="ana")
    assert trap.counts()[event] == {"deer": (2, "machine"), "fox": (1, "machine")}
    one = trap.event(30, deer=(1, 1))
    trap.crop(one, "deer")
    decide_event(trap.store, one, "confirm", count=2, reviewer="ana", now=REVIEWED_AT)
    assert trap.counts()[one] == {"deer": (2, "reviewer")}
    with pytest.raises(ReviewRefused):
        decide_event(trap.store, one, "relabel", "deer", count=-1, reviewer="ana")
    with pytest.raises(ReviewRefused, match="no crop or record"):
        decide_event(trap.store, trap.event(90, deer=(1, 1)), "confirm", reviewer="ana")


def test_people_and_blurred_crops_keep_their_machine_label_and_do_not_block(trap):
    event = trap.event(0, deer=(1, 1), person=(1, 1))
    deer = trap.crop(event, "deer")
    trap.crop(event, "person")  # written blurred in blur mode: never on the page
    decide_event(trap.store, event, "relabel", "fox", reviewer="ana", now=REVIEWED_AT)
    assert trap.counts()[event] == {"fox": (1, "reviewer"), "person": (1, "reviewer")}
    assert trap.rows(event)["deer"][2] == "fox"
    assert deer


def test_the_roll_up_follows_the_review_and_totals_equal_its_sum(trap):
    events = [trap.event(0, deer=(2, 2)), trap.event(20, deer=(1, 1)), trap.event(40, fox=(1, 1))]
    trap.store.rollup(minutes=15)
    crops = [trap.crop(e, label) for e, label in zip(events, ["deer", "deer", "fox"], strict=True)]
    trap.crops(crops[:1], "relabel", "boar")
    rolled = {}
    for c in trap.store.counts():
        rolled[c.label] = rolled.get(c.label, 0) + c.count
    assert rolled == trap.store.totals() == {"boar": 2, "deer": 1, "fox": 1}
    # an agent's later roll-up (its schedule) keeps the reviewed counts
    trap.store.rollup(minutes=15)
    assert {c.label: c.count for c in trap.store.counts() if c.interval_start == T0} == {"boar": 2}
    # the machine's counts: the same intervals, summed from the machine's observations
    report = build_report(load(trap.store, counts="machine"))
    assert [(c["label"], c["count"]) for c in report["counts"]] == [
        ("deer", 2),
        ("deer", 1),
        ("fox", 1),
    ]
    assert report["counts"][0]["interval_start"] == "2026-05-01T06:00:00+02:00"


def test_reports_csv_and_json_mark_whose_count(trap, tmp_path):
    event = trap.event(0, deer=(2, 2))
    other = trap.event(30, fox=(1, 1))
    trap.crops([trap.crop(event, "deer")], "relabel", "boar")
    trap.crop(other, "fox")
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--db", trap.path, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"] == {"boar": 2, "fox": 1}
    boar = next(e for e in data["events"] if e["id"] == event)
    assert boar["counted_by"] == "reviewer" and boar["machine"] == {"deer": 2}
    assert boar["reviewed_by"] == "ana" and boar["reviewed_at"] == "2026-05-20T11:30:00+02:00"
    assert boar["count_from_reviewer"] is False
    fox = next(e for e in data["events"] if e["id"] == other)
    assert fox["counted_by"] == "machine" and fox["reviewed_by"] is None
    machine = json.loads(
        runner.invoke(
            cli, ["report", "--db", trap.path, "--format", "json", "--counts", "machine"]
        ).stdout
    )
    assert machine["totals"] == {"deer": 2, "fox": 1} and machine["counts_from"] == "machine"
    table = runner.invoke(cli, ["report", "--db", trap.path]).stdout
    assert table.splitlines()[0].split() == ["label", "events", "count", "max_n", "reviewed"]
    assert "counts: a reviewer's for 1 of 2 events" in table
    out = tmp_path / "sheets"
    assert (
        runner.invoke(cli, ["export", "csv", "--db", trap.path, "--out", str(out)]).exit_code == 0
    )
    rows = list(csv.DictReader(io.StringIO((out / "events.csv").read_text())))
    assert [(r["label"], r["max_n"], r["counted_by"], r["machine"]) for r in rows] == [
        ("boar", "2", "reviewer", "deer:2"),
        ("fox", "1", "machine", "fox:1"),
    ]


def test_camtrap_dp_carries_the_reviewers_and_the_machines_classification(trap, tmp_path):
    pytest.importorskip("frictionless", reason="validation needs frictionless")
    event = trap.event(0, deer=(2, 2))
    other = trap.event(30, fox=(1, 1))
    trap.crop(event, "deer")
    decide_event(trap.store, event, "relabel", "boar", 3, reviewer="Ana Muster", now=REVIEWED_AT)
    trap.crop(other, "fox")
    out = tmp_path / "package"
    result = CliRunner().invoke(
        cli, ["export", "camtrap-dp", "--db", trap.path, "--out", str(out), "--validate"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["eventID"]: r for r in csv.DictReader((out / "observations.csv").open())}
    boar, fox = rows[f"meadow-e{event}"], rows[f"meadow-e{other}"]
    assert boar["classificationMethod"] == "human" and boar["classifiedBy"] == "Ana Muster"
    assert boar["classificationTimestamp"] == "2026-05-20T11:30:00+02:00"
    assert boar["classificationProbability"] == "" and boar["count"] == "3"
    assert boar["scientificName"] == "Sus scrofa"
    assert (
        "machine_label:deer | machine_count:2 | machine_probability:0.8000"
        in boar["observationTags"]
    )
    assert "the machine said deer (MaxN 2)" in boar["observationComments"]
    assert fox["classificationMethod"] == "machine" and fox["classificationProbability"] == "0.8000"


def test_sync_carries_reviewed_observations_to_postgresql(trap):
    from tests.deploy.postgres import shared_server

    server = shared_server()
    url = server.create_database()
    try:
        event = trap.event(0, deer=(2, 2))
        crops = [trap.crop(event, "deer"), trap.crop(event, "deer")]
        trap.store.rollup(minutes=15)
        target = parse_url(url)
        assert sync(trap.store, target).complete
        # a review after the first sync: an update of observations and an added row
        trap.crops(crops[:1], "confirm")
        trap.crops(crops[1:], "relabel", "fox")
        result = sync(trap.store, target)
        assert result.kinds["event"] == 1 and result.kinds["count"] == 1
        with Store.open(url, create=False) as central:
            assert build_report(load(central))["totals"] == {"deer": 1, "fox": 1}
            assert build_report(load(central, counts="machine"))["totals"] == {"deer": 2}
            assert central.totals() == trap.store.totals() == {"deer": 1, "fox": 1}
            assert sum(c.count for c in central.counts()) == 2
            (row,) = [r for r in central.event_rows() if r.label == "fox"]
            assert (row.reviewed_by, row.reviewed_at, row.reviewed_counted) == (
                "ana",
                REVIEWED_AT,
                False,
            )
    finally:
        server.drop(make_url(url).database)
