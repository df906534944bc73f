"""``trapcount`` as a user runs it: real subprocesses, real videos, a real tiny model,
real SQLite files; exact output where it is ours to define."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from datetime import datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.demo.scenes import Scene, crossing
from edge_agent.demo.writers import write_image_burst
from tests.helpers.media import (
    START,
    copy_model,
    crossings_video,
    event_count,
    query,
    run_trapcount,
    start_trapcount,
    stop,
    subprocess_env,
    tiny_model_dir,
    trapcount_command,
    wait_for,
    write_config,
    write_huge_png,
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
            "count_from_reviewer",
            "counted_by",
            "deployment_id",
            "end",
            "frames",
            "id",
            "illumination",
            "label",
            "machine",
            "max_n",
            "model",
            "privacy_suppressed",
            "reviewed_at",
            "reviewed_by",
            "start",
            "tracks",
            "trap_id",
        )
    }
    assert {e["illumination"] for e in events} == {"colour"}  # the generator draws in colour
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
    assert ", 1 event (" in merged.stdout
    assert (
        f"note: {len(clip.events) - 1} events that an earlier run found in the same footage"
        in merged.stderr
    )
    assert query(tmp_path / "t.sqlite", "SELECT count(*) FROM events") == [(1,)]
    totals = dict(
        query(tmp_path / "t.sqlite", "SELECT label, sum(count) FROM counts GROUP BY label")
    )
    assert totals == dict(
        query(tmp_path / "t.sqlite", "SELECT label, sum(max_n) FROM observations GROUP BY label")
    )


def _same_file_time(*paths) -> None:
    """As after copying clips off an SD card: every file gets the same modification time."""
    import os

    when = (START + timedelta(minutes=5)).timestamp()
    for path in paths:
        os.utime(path, (when, when))


def _event_keys(db) -> list[tuple[str, str]]:
    return query(db, "SELECT source_key, start_time FROM events ORDER BY source_key, start_time")


def test_two_clips_off_one_sd_card_keep_each_others_counts(tmp_path, model):
    """CLIP0001 and CLIP0002 have the same length and, once copied, the same file time, so
    the same media times; animals enter both at the same second. Processing one after the
    other keeps both clips' events; rerunning either replaces its own events only."""
    plan = [("deer", 2, 1.0, 6.0), ("fox", 1, 14.0, 5.0)]
    first = crossings_video(tmp_path / "CLIP0001.mp4", plan, duration_s=25.0, seed=1)
    second = crossings_video(tmp_path / "CLIP0002.mp4", plan, duration_s=25.0, seed=2)
    _same_file_time(first.path, second.path)
    db = tmp_path / "sd.sqlite"
    base = ("--db", db, "--model", model, "--event-gap", "5", "-q")

    one = run_trapcount("process", first.path, *base, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    after_one = _event_keys(db)
    assert len(after_one) == len(first.events)
    two = run_trapcount("process", second.path, *base, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "removed" not in two.stderr
    both = _event_keys(db)
    assert len(both) == len(first.events) + len(second.events)
    assert set(after_one) <= set(both)
    # The two clips' events start at the same times: two events each time, not one.
    starts = [start for _key, start in both]
    assert len(set(starts)) < len(starts)

    # Rerunning either clip replaces its own events and leaves the other's alone.
    for clip in (first, second):
        again = run_trapcount("process", clip.path, *base, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "removed" not in again.stderr
        assert _event_keys(db) == both
    totals = dict(query(db, "SELECT label, sum(count) FROM counts GROUP BY label"))
    assert totals == dict(query(db, "SELECT label, sum(max_n) FROM observations GROUP BY label"))
    assert sum(totals.values()) == sum(first.totals.values()) + sum(second.totals.values())


def test_a_photo_folder_inside_a_clips_time_span_keeps_the_clips_counts(tmp_path, model):
    clip = crossings_video(tmp_path / "clip.mp4", [("deer", 1, 1.0, 6.0)], duration_s=20.0)
    photos = tmp_path / "photos"
    scene = Scene(duration_s=8.0, walks=crossing("fox", 0.5, 6.0), seed=4)
    times = [0.5 + 0.25 * i for i in range(26)]
    write_image_burst(scene, photos, times, start_time=START + timedelta(seconds=8))
    db = tmp_path / "t.sqlite"
    base = ("--db", db, "--model", model, "--event-gap", "5", "-q")
    assert run_trapcount("process", clip.path, *base, cwd=tmp_path).returncode == 0
    from_clip = _event_keys(db)
    assert len(from_clip) == len(clip.events)
    folder = run_trapcount("process", photos, *base, cwd=tmp_path)
    assert folder.returncode == 0, folder.stderr
    assert "removed" not in folder.stderr
    assert set(from_clip) < set(_event_keys(db))


def test_process_with_start_time_and_the_model_from_the_environment(tmp_path, model):
    scene = Scene(duration_s=10.0, walks=crossing("fox", 1.0, 5.0), seed=5)
    from edge_agent.demo.writers import write_video

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


def _address_space_limit(limit_bytes: int):
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def test_a_huge_photo_does_not_end_the_run_on_a_2_gb_pi(tmp_path, model):
    """A folder with one 20000x20000 PNG among a burst, run with the address space of a
    2 GB Pi: the PNG is skipped with one warning, the burst is counted."""
    scene = Scene(duration_s=8.0, walks=crossing("deer", 0.5, 6.0), seed=2)
    times = [0.5 + 0.25 * i for i in range(26)]
    truth = write_image_burst(scene, tmp_path / "card", times, start_time=START)
    write_huge_png(tmp_path / "card" / "IMG_0000.PNG", 20000, 20000)
    result = subprocess.run(
        trapcount_command("process", "card", "--db", "b.sqlite", "--model", model, "-q"),
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=_address_space_limit(2_500_000_000),
    )
    assert result.returncode == 0, result.stderr
    assert f"card: {len(times)} frames" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "IMG_0000.PNG" in line]
    assert len(warnings) == 1 and "too large" in warnings[0]
    assert len(query(tmp_path / "b.sqlite", "SELECT id FROM events")) == len(truth.events) == 1


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


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGHUP], ids=["INT", "HUP"])
def test_a_stop_signal_during_process_writes_the_open_events_and_exits_130(
    tmp_path, long_clip, model, stop_signal
):
    """Ctrl-C, or the SSH session it ran in dropping (SIGHUP)."""
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
    assert stop(proc, stop_signal) < 10
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


def test_a_config_without_model_dir_uses_the_shipped_model(tmp_path, clip):
    from edge_agent.manifest import read_manifest
    from edge_agent.service.model import default_model_dir

    (tmp_path / "site").mkdir()
    config = write_config(tmp_path / "site" / "trap.toml", {"events": {"event_gap_s": 5.0}})
    result = run_trapcount("process", clip.path, "--config", config, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shipped = read_manifest(default_model_dir()).version
    assert f"model {shipped}" in result.stdout


def test_a_missing_motion_mask_is_a_config_error_naming_the_key(tmp_path, clip, model):
    config = write_config(tmp_path / "trap.toml", {"motion": {"mask": "masks/trap-01.png"}})
    for command in (
        ("process", clip.path, "--config", config, "--model", model),
        ("run", "--config", config),
    ):
        result = run_trapcount(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        line = one_error_line(result)
        assert line.startswith("Error: motion.mask: ") and "masks/trap-01.png is not found" in line
    assert not (tmp_path / "trapcount.sqlite").exists()


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
