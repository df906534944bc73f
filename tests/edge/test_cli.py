"""``trapcount`` as a user runs it: real subprocesses, real videos, a real tiny model,
real SQLite files; exact output where it is ours to define."""

from __future__ import annotations

import json
import re
import signal
from datetime import datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.scenes import Scene, crossing, write_image_burst
from tests.helpers.media import (
    START,
    copy_model,
    crossings_video,
    event_count,
    query,
    run_trapcount,
    start_trapcount,
    stop,
    tiny_model_dir,
    wait_for,
    write_config,
)

LONG_PLAN = [("deer", 1, 2.0 + 14 * i, 5.0) for i in range(10)]  # 10 events, 14 s apart


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Three events: two deer together, one fox, one boar; 5 s event gap."""
    folder = tmp_path_factory.mktemp("clip")
    plan = [("deer", 2, 1.0, 6.0), ("fox", 1, 16.0, 5.0), ("boar", 1, 30.0, 6.0)]
    return crossings_video(folder / "clip.mp4", plan, duration_s=40.0)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    return crossings_video(folder / "long.mp4", LONG_PLAN, duration_s=14 * 10 + 2.0, fps=6.0)


def summary_lines(stdout: str) -> dict[str, tuple[int, int, int]]:
    """{label: (events, count, max_n)} from the summary table of `process`."""
    lines = stdout.strip().splitlines()
    assert lines[1].split() == ["label", "events", "count", "max_n"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    rows = {}
    for line in lines[3:]:
        label, events, count, max_n = line.split()
        rows[label] = (int(events), int(count), int(max_n))
    return rows


# -- help ---------------------------------------------------------------------------------


def test_every_command_is_documented():
    runner = CliRunner()
    assert set(cli.commands) >= {"run", "process", "report", "doctor"}
    for name, command in cli.commands.items():
        assert command.help, f"{name} has no docstring"
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        first_line = command.help.strip().splitlines()[0]
        assert first_line in " ".join(result.output.split()), name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help"
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for name in cli.commands:
        assert name in top.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("trapcount, version ")


# -- process and report -------------------------------------------------------------------


def test_process_a_video_then_report_it_as_json_and_table(tmp_path, clip, model):
    config = write_config(
        tmp_path / "trap.toml",
        {
            "trap": {"id": "meadow-3", "timezone": "Europe/Zurich"},
            "storage": {"db_path": "counts.sqlite", "rollup_minutes": 1},
        },
    )
    result = run_trapcount(
        "process",
        clip.path,
        "--config",
        config,
        "--model",
        model,
        "--event-gap",
        "5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    db = tmp_path / "counts.sqlite"
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"clip.mp4: {clip.frames} frames, ")
    assert f", {len(clip.events)} events (trap meadow-3, model " in first
    assert first.endswith(f"database {db})")
    summary = summary_lines(result.stdout)
    assert sum(events for events, _, _ in summary.values()) >= len(clip.events)
    assert "frames" in result.stderr  # progress went to stderr, not into the table

    report = run_trapcount("report", "--db", db, "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["totals"] == {label: count for label, (_, count, _) in summary.items()}
    events = data["events"]
    assert len({e["id"] for e in events}) == len(clip.events)
    assert {tuple(sorted(e)) for e in events} == {
        (
            "confidence",
            "deployment_id",
            "end",
            "frames",
            "id",
            "label",
            "max_n",
            "model",
            "start",
            "tracks",
            "trap_id",
        )
    }
    # totals = sum of per-event MaxN; the roll-up agrees; times carry the trap's offset.
    for label, total in data["totals"].items():
        assert total == sum(e["max_n"] for e in events if e["label"] == label)
        assert total == sum(c["count"] for c in data["counts"] if c["label"] == label)
    for e in events:
        start, end = datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"])
        assert e["start"].endswith("+02:00") and start.utcoffset() == timedelta(hours=2)
        assert START <= start <= end <= START + timedelta(seconds=40)
        assert 0 < e["confidence"] <= 1 and e["max_n"] >= 1 and e["frames"] >= 1
    assert data["deployments"][0]["trap_id"] == "meadow-3"

    table = run_trapcount("report", "--config", config, cwd=tmp_path)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["label", "events", "count", "max_n"]


def test_rerunning_process_replaces_events_instead_of_counting_twice(tmp_path, clip, model):
    args = ("process", clip.path, "--db", "t.sqlite", "--model", model, "--event-gap", "5", "-q")
    first = run_trapcount(*args, cwd=tmp_path)
    second = run_trapcount(*args, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert "Error" not in first.stderr + second.stderr
    events = query(tmp_path / "t.sqlite", "SELECT count(*) FROM events")[0][0]
    assert events == len(clip.events)
    # Other settings over the same footage: a gap longer than the pauses merges the three
    # events into one, and the earlier run's events do not linger next to it.
    merged = run_trapcount(*args[:-3], "--event-gap", "30", "-q", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert ", 1 events (" in merged.stdout
    assert f"note: {len(clip.events) - 1} event(s) of an earlier run" in merged.stderr
    assert query(tmp_path / "t.sqlite", "SELECT count(*) FROM events") == [(1,)]
    totals = dict(
        query(tmp_path / "t.sqlite", "SELECT label, sum(count) FROM counts GROUP BY label")
    )
    assert totals == dict(
        query(tmp_path / "t.sqlite", "SELECT label, sum(max_n) FROM observations GROUP BY label")
    )


def test_process_with_start_time_and_the_model_from_the_environment(tmp_path, model):
    scene = Scene(duration_s=10.0, walks=crossing("fox", 1.0, 5.0), seed=5)
    from edge_agent.scenes import write_video

    write_video(scene, tmp_path / "fox.mp4", event_gap_s=5.0)
    result = run_trapcount(
        "process",
        "fox.mp4",
        "--start",
        "2030-01-02T03:04:05",
        "-q",
        cwd=tmp_path,
        TRAPCOUNT_MODEL=str(model),
    )
    assert result.returncode == 0, result.stderr
    (start,) = query(tmp_path / "trapcount.sqlite", "SELECT start_time FROM events")[0]
    assert start.startswith("2030-01-02 03:04:0")  # no offset given: the trap's zone (UTC)


def test_process_an_image_folder_burst(tmp_path, model):
    scene = Scene(duration_s=8.0, walks=crossing("deer", 0.5, 6.0), seed=2)
    times = [0.5 + 0.25 * i for i in range(26)]
    truth = write_image_burst(scene, tmp_path / "burst", times, start_time=START)
    result = run_trapcount(
        "process", "burst", "--db", "b.sqlite", "--model", model, "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"burst: {len(times)} frames" in result.stdout
    rows = query(tmp_path / "b.sqlite", "SELECT start_time, end_time FROM events")
    assert len(rows) == len(truth.events) == 1


# -- robustness ---------------------------------------------------------------------------


def test_kill_9_in_the_middle_of_process_leaves_a_sound_database(tmp_path, long_clip, model):
    args = ("process", long_clip.path, "--db", "k.sqlite", "--model", model, "--event-gap", "5")
    proc = start_trapcount(*args, cwd=tmp_path, log=tmp_path / "killed.log")
    db = tmp_path / "k.sqlite"
    wait_for(
        lambda: event_count(db) >= 2,
        timeout=90,
        what="two events written",
        proc=proc,
    )
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    written_before = query(db, "SELECT id, start_time FROM events ORDER BY id")
    assert 2 <= len(written_before) < len(long_clip.events), "killed too late to prove much"

    integrity = query(db, "PRAGMA integrity_check")
    assert integrity == [("ok",)]

    rerun = run_trapcount(*args, "-q", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    match = re.search(r", (\d+) events \(", rerun.stdout)
    assert match is not None
    events = query(db, "SELECT id, start_time FROM events ORDER BY id")
    assert len(events) == int(match.group(1)) >= len(written_before)
    assert len({start for _, start in events}) == len(events)  # nothing counted twice
    assert events[: len(written_before)] == written_before  # the same rows, replaced in place
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_ctrl_c_during_process_writes_the_open_events_and_exits_130(tmp_path, long_clip, model):
    args = ("process", long_clip.path, "--db", "i.sqlite", "--model", model, "--event-gap", "5")
    log = tmp_path / "interrupted.log"
    proc = start_trapcount(*args, cwd=tmp_path, log=log)
    db = tmp_path / "i.sqlite"
    wait_for(
        lambda: event_count(db) >= 1,
        timeout=90,
        what="an event written",
        proc=proc,
    )
    assert stop(proc, signal.SIGINT) < 10
    assert proc.returncode == 130
    output = log.read_text()
    assert "interrupted: the events so far are written" in output
    assert "Traceback" not in output
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


# -- errors -------------------------------------------------------------------------------


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    lines = [line for line in lines if "XNNPACK" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_source_is_one_line(tmp_path, model):
    result = run_trapcount("process", "nope.mp4", "--model", model, cwd=tmp_path)
    assert result.returncode == 1
    assert "nope.mp4" in one_error_line(result)


def test_a_model_that_does_not_match_its_manifest_is_one_line(tmp_path, clip, model):
    broken = copy_model(model, tmp_path / "broken")
    with open(broken / "model.tflite", "ab") as handle:
        handle.write(b"\0" * 16)
    result = run_trapcount("process", clip.path, "--model", broken, cwd=tmp_path)
    assert result.returncode == 1
    assert "does not match its manifest" in one_error_line(result)
    assert not (tmp_path / "trapcount.sqlite").exists()


def test_a_missing_model_is_one_line(tmp_path, clip):
    result = run_trapcount("process", clip.path, "--model", tmp_path / "none", cwd=tmp_path)
    assert result.returncode == 1
    assert "model file not found" in one_error_line(result)


def test_report_on_a_missing_database_is_one_line(tmp_path):
    result = run_trapcount("report", "--db", "absent.sqlite", cwd=tmp_path)
    assert result.returncode == 1
    assert "no database at" in one_error_line(result)
    assert not (tmp_path / "absent.sqlite").exists()


def test_report_needs_a_database(tmp_path):
    result = run_trapcount("report", cwd=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == "Error: give --db PATH or --config FILE"


def test_bad_start_time_exits_2(tmp_path, clip, model):
    result = run_trapcount(
        "process", clip.path, "--model", model, "--start", "yesterday", cwd=tmp_path
    )
    assert result.returncode == 2
    assert one_error_line(result) == "Error: --start: not an ISO 8601 time: 'yesterday'"
