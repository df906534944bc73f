"""``trapcount run``: the service in a real subprocess on a generated video (SIGTERM, hot
reload, heartbeats, roll-ups), plus in-process checks of its scheduling and logging."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import settings_from_dict
from edge_agent.service.daemon import Service
from edge_agent.service.logging_setup import JournalFormatter, setup_logging, stream_is_journal
from edge_agent.service.model import load_classifier
from edge_agent.service.schedule import ActiveHours
from edge_agent.store.database import Store
from tests.helpers.media import (
    START,
    copy_model,
    crossings_video,
    event_count,
    lingering_video,
    query,
    replace_model,
    start_trapcount,
    stop,
    tiny_model_dir,
    wait_for,
    write_config,
)


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config, seed=0)


@pytest.fixture(scope="module")
def model_b(request):
    return tiny_model_dir(request.config, seed=1)


def service_config(tmp_path: Path, source: Path, model_dir: Path, **service) -> Path:
    return write_config(
        tmp_path / "trap.toml",
        {
            "trap": {"id": "svc-trap"},
            "source": {"uri": str(source)},
            "classifier": {"model_dir": str(model_dir), "confidence_threshold": 0.3},
            "events": {"event_gap_s": 5.0},
            "storage": {"db_path": "svc.sqlite", "rollup_minutes": 1},
            "service": {"heartbeat_s": 5, "model_check_s": 1, **service},
        },
    )


def log_has(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text()


# -- the service in a subprocess ----------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_stop_signal_closes_the_open_event_writes_it_and_exits_0(tmp_path, model, stop_signal):
    """SIGTERM (systemd) and SIGHUP (the SSH session `trapcount run` was started from
    dropped) both stop the service cleanly."""
    clip = lingering_video(tmp_path / "linger.mp4", duration_s=30.0)
    config = service_config(tmp_path, clip.path, model, replay_speed=2.0)
    log = tmp_path / "service.log"
    proc = start_trapcount("run", "--config", config, cwd=tmp_path, log=log)
    db = tmp_path / "svc.sqlite"
    try:
        wait_for(
            lambda: (
                query(db, "SELECT 1 FROM heartbeats WHERE open_events > 0") if db.exists() else None
            ),
            timeout=45,
            what="a heartbeat with an open event",
            proc=proc,
        )
        assert event_count(db) == 0  # the animal is still there: its event is open
        took = stop(proc, stop_signal)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert proc.returncode == 0, output
    assert took < 5.0, f"stopping took {took:.1f} s"
    assert f"{stop_signal.name} received" in output and "closing 1 open event(s)" in output
    assert "Traceback" not in output

    (event,) = query(db, "SELECT id, start_time, end_time FROM events")
    start = datetime.fromisoformat(event[1]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(event[2]).replace(tzinfo=UTC)
    assert START < start < end < START + timedelta(seconds=30)  # cut short by the stop
    observations = query(db, "SELECT label, max_n FROM observations WHERE event_id = ?", event[0])
    assert observations and sum(n for _, n in observations) >= 1
    # The final roll-up ran: counts equal the sum of MaxN.
    counts = dict(query(db, "SELECT label, sum(count) FROM counts GROUP BY label"))
    assert counts == {label: n for label, n in observations}
    beats = query(db, "SELECT frames, open_events, model_sha256, free_disk_bytes FROM heartbeats")
    assert len(beats) >= 2
    assert beats[-1][0] > 0 and beats[-1][1] == 0  # the last one, after closing
    assert all(b[2] and b[3] > 0 for b in beats)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_hot_reload_takes_a_good_model_and_refuses_a_bad_one(tmp_path, model, model_b):
    live_model = copy_model(model, tmp_path / "model")
    plan = [("deer", 1, 2.0 + 10 * i, 5.0) for i in range(14)]
    clip = crossings_video(tmp_path / "long.mp4", plan, duration_s=142.0, fps=6.0)
    config = service_config(tmp_path, clip.path, live_model, replay_speed=5.0)
    log = tmp_path / "service.log"
    db = tmp_path / "svc.sqlite"
    sha_a = (model / "model.json").read_text().split('"sha256": "')[1][:64]
    sha_b = (model_b / "model.json").read_text().split('"sha256": "')[1][:64]
    proc = start_trapcount("run", "--config", config, cwd=tmp_path, log=log)
    try:
        wait_for(lambda: event_count(db) >= 1, 60, "a first event", proc)

        replace_model(model_b, live_model)
        wait_for(
            lambda: log_has(log, f"model reloaded: {sha_a[:12]} -> {sha_b[:12]}"),
            30,
            "the new model",
            proc,
        )
        versions = query(db, "SELECT sha256 FROM model_versions ORDER BY id")
        assert versions == [(sha_a,), (sha_b,)]
        with_b = (
            "SELECT count(*) FROM events JOIN model_versions m ON m.id = events.model_version_id "
            "WHERE m.sha256 = ?"
        )
        wait_for(lambda: query(db, with_b, sha_b)[0][0] >= 1, 60, "an event by model B", proc)

        # A damaged copy: the manifest of B, the bytes of B with garbage appended.
        with open(live_model / "model.tflite", "ab") as handle:
            handle.write(b"garbage")
        wait_for(lambda: log_has(log, "model reload refused"), 30, "the refusal", proc)
        refused_at = event_count(db)
        wait_for(lambda: event_count(db) > refused_at, 60, "counting to go on", proc)
        stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert proc.returncode == 0, output
    refusal = next(line for line in output.splitlines() if "model reload refused" in line)
    assert "does not match its manifest" in refusal and f"keeping model {sha_b[:12]}" in refusal
    assert output.count("model reload refused") == 1  # refused once, not at every check
    latest = query(db, "SELECT model_sha256 FROM heartbeats ORDER BY id DESC LIMIT 1")
    assert latest == [(sha_b,)]
    assert query(db, with_b, sha_b)[0][0] >= 2
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


# -- the service in-process ---------------------------------------------------------------


def make_service(tmp_path: Path, model_dir: Path, source: Path, **sections) -> Service:
    data = {
        "source": {"uri": str(source)},
        "classifier": {"model_dir": str(model_dir)},
        "storage": {"db_path": str(tmp_path / "inproc.sqlite")},
        "service": {"heartbeat_s": 5, "shutdown_timeout_s": 2},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    settings = settings_from_dict(data, base_dir=tmp_path)
    store = Store.open(settings.storage.db_path)
    classifier = load_classifier(model_dir, settings.classifier)
    return Service(settings, store=store, classifier=classifier, model_dir=model_dir)


def run_for(service: Service, seconds: float) -> None:
    thread = threading.Thread(target=service.run)
    thread.start()
    time.sleep(seconds)
    service.stop()
    thread.join(15)
    assert not thread.is_alive()
    service.store.close()
    service.classifier.close()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("short")
    return crossings_video(folder / "short.mp4", [("fox", 1, 1.0, 4.0)], duration_s=8.0)


def test_reload_variants_keep_the_running_model_unless_the_new_one_loads(
    tmp_path, model, model_b, short_clip
):
    live = copy_model(model, tmp_path / "model")
    service = make_service(tmp_path, live, short_clip.path)
    original = service.classifier
    try:
        # Same files touched: nothing to do.
        os.utime(live / "model.tflite")
        assert service.reload_model() is False and service.classifier is original
        # A file that is not a model, with a manifest that matches its hash.
        (live / "model.tflite").write_bytes(b"not a flatbuffer" * 64)
        manifest = (live / "model.json").read_text()
        from edge_agent.manifest import sha256_file

        old_sha = manifest.split('"sha256": "')[1][:64]
        (live / "model.json").write_text(
            manifest.replace(old_sha, sha256_file(live / "model.tflite"))
        )
        assert service.reload_model() is False and service.classifier is original
        # A missing manifest.
        (live / "model.json").unlink()
        assert service.reload_model() is False and service.classifier is original
        # A good new model.
        replace_model(model_b, live)
        assert service.reload_model() is True
        assert service.classifier is not original
        assert service.classifier.sha256 != original.sha256
        shas = [m["sha256"] for m in service.store.model_versions()]
        assert shas == [original.sha256, service.classifier.sha256]
    finally:
        service.store.close()
        service.classifier.close()


def test_a_grey_companion_added_replaced_or_broken_is_seen_by_the_reload_check(
    tmp_path, model, model_b, short_clip
):
    """The companion is part of the model: adding one is a new model, a new companion alone
    is a new model, and a broken one refuses the reload and keeps the running pair."""
    from edge_agent.manifest import GREY_FILENAME
    from edge_agent.service.model import model_signature
    from trainer.pair import pair_models

    live = copy_model(model, tmp_path / "model")
    service = make_service(tmp_path, live, short_clip.path)
    try:
        colour_only = service.classifier
        pair_models(live, model_b, live)
        assert service.reload_model(model_signature(live)) is True
        paired = service.classifier
        assert paired.has_grey_companion and paired.sha256 != colour_only.sha256
        pair_models(live, model, live)  # the colour network as its own companion: another
        assert service.reload_model(model_signature(live)) is True
        assert service.classifier.sha256 not in (colour_only.sha256, paired.sha256)
        current = service.classifier
        (live / GREY_FILENAME).write_bytes(b"half a copy")
        assert service.reload_model(model_signature(live)) is False
        assert service.classifier is current
        shas = [m["sha256"] for m in service.store.model_versions()]
        assert shas == [colour_only.sha256, paired.sha256, current.sha256]
    finally:
        service.store.close()
        service.classifier.close()


def test_outside_active_hours_the_camera_is_not_opened(tmp_path, model, short_clip):
    away = str((datetime.now(UTC).hour + 12) % 24)
    service = make_service(tmp_path, model, short_clip.path, capture={"active_hours": away})
    run_for(service, 2.0)
    assert service.frames == 0 and not service.capturing
    with Store.open(tmp_path / "inproc.sqlite") as store:
        beats = store.heartbeats()
    assert beats and all(b["capturing"] is False and b["frames"] == 0 for b in beats)


def test_interval_mode_takes_bursts_and_releases_the_source_between(
    tmp_path, model, short_clip, caplog
):
    caplog.set_level(logging.DEBUG, logger="trapcount.service")
    capture = {"mode": "interval", "interval_s": 1.0, "burst_frames": 3}
    service = make_service(tmp_path, model, short_clip.path, capture=capture)
    run_for(service, 3.5)
    bursts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("burst:")]
    assert len(bursts) >= 2
    assert bursts[0] == bursts[1] == "burst: 3 frame(s), source released"
    assert service.frames >= 6
    assert service._source_finished is False  # a burst is not the end of the file


def test_the_service_writes_events_and_keeps_no_list_of_them(tmp_path, model, short_clip):
    """Months of events must not grow the service: its sink writes them and forgets them
    (``process`` keeps their ids to report and replace them)."""
    service = make_service(tmp_path, model, short_clip.path)
    run_for(service, 3.0)
    with Store.open(tmp_path / "inproc.sqlite") as store:
        assert store.totals()  # the fox was counted and written
    assert service.sink.written >= 1
    assert service.sink.event_ids == []


def test_active_hours_are_cron_fields_in_the_traps_time_zone():
    nights = ActiveHours("18-23,0-6", "*", "Europe/Zurich")
    assert nights.contains(datetime(2024, 6, 1, 3, 30, tzinfo=UTC))  # 05:30 in Zurich
    assert not nights.contains(datetime(2024, 6, 1, 5, 30, tzinfo=UTC))  # 07:30 in Zurich
    assert nights.contains(datetime(2024, 6, 1, 16, 0, 0, 500, tzinfo=UTC))  # 18:00:00.0005
    weekdays = ActiveHours("*", "mon-fri", "UTC")
    assert weekdays.contains(datetime(2024, 6, 3, 12, tzinfo=UTC))  # a Monday
    assert not weekdays.contains(datetime(2024, 6, 1, 12, tzinfo=UTC))  # a Saturday
    assert weekdays.next_start(datetime(2024, 6, 1, 12, tzinfo=UTC)) == datetime(
        2024, 6, 3, tzinfo=UTC
    )
    assert ActiveHours("*", "*", "UTC").always


# -- logging ------------------------------------------------------------------------------


def test_journald_lines_carry_syslog_priorities(tmp_path, monkeypatch):
    path = tmp_path / "journal"
    with open(path, "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.delenv("TRAPCOUNT_LOG_FORMAT", raising=False)
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert stream_is_journal(stream)
        setup_logging("INFO", stream=stream)
        log = logging.getLogger("trapcount.service")
        log.info("started")
        log.warning("low disk")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("capture failed")
        log.debug("not shown")
    lines = path.read_text().splitlines()
    assert lines[0] == "<6>trapcount.service: started"
    assert lines[1] == "<4>trapcount.service: low disk"
    assert lines[2] == "<3>trapcount.service: capture failed"
    assert len(lines) > 4 and all(line.startswith("<3>") for line in lines[2:])  # traceback too
    setup_logging("INFO")  # back to stderr for the other tests


def test_plain_lines_elsewhere(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("TRAPCOUNT_LOG_FORMAT", raising=False)
    stream = io.StringIO()
    assert not stream_is_journal(stream)
    setup_logging("INFO", stream=stream)
    logging.getLogger("trapcount.service").info("hello")
    assert stream.getvalue().rstrip().endswith("INFO    trapcount.service: hello")
    assert not stream.getvalue().startswith("<")
    setup_logging("INFO")
    record = logging.LogRecord("trapcount.x", logging.CRITICAL, __file__, 1, "m", None, None)
    assert JournalFormatter().format(record) == "<2>trapcount.x: m"


def test_stream_passwords_stay_out_of_the_log():
    from edge_agent.capture.live import redact

    assert redact("rtsp://admin:s3cret@10.0.0.5:554/stream1") == (
        "rtsp://admin:***@10.0.0.5:554/stream1"
    )
    assert redact("/data/clip.mp4") == "/data/clip.mp4"


def test_the_service_runs_retention_and_reports_the_disk_guard(tmp_path, model, short_clip):
    service = make_service(
        tmp_path, model, short_clip.path, media={"media_dir": "media", "retention_days": 30}
    )
    try:
        store, keeper = service.store, service.keeper
        assert keeper is not None and keeper.media_dir == tmp_path / "media"
        assert service.privacy is not None  # privacy.mode defaults to drop
        old = tmp_path / "media" / "old.jpg"
        old.write_bytes(b"old")
        store.add_media(
            deployment_id=service.deployment_id,
            time=datetime.now(UTC) - timedelta(days=31),
            kind="crop",
            path=str(old),
            sha256="0" * 64,
            bytes=3,
            label="fox",
            confidence=0.5,
            disagreed=False,
            privacy_status="clear",
        )
        service._retention_job()
        assert not old.exists() and store.media() == []
        assert [d.reason for d in store.media_deletions()] == ["retention"]
        service._write_heartbeat()
        keeper.paused = True
        service._write_heartbeat()
        assert [b["media_paused"] for b in store.heartbeats()] == [True, False]
    finally:
        service.store.close()
        service.classifier.close()


# -- process: a database that refuses writes for a while ----------------------------------


class _Unblocks(logging.Handler):
    """Calls ``unblock`` once the agent has logged a failed write."""

    def __init__(self, unblock) -> None:
        super().__init__(logging.ERROR)
        self.unblock = unblock
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.unblock is not None and "retried" in record.getMessage():
            self.unblock()
            self.unblock = None


def _process_while_refused(tmp_path, model, *, recovers: bool):
    """`process` on a one-event clip while the database refuses new events (a trigger
    aborts them, as a full disk or a corrupt page would); with ``recovers``, it takes them
    again once the agent has logged its failed write."""
    import sqlite3

    from edge_agent.service.batch import process_source

    clip = crossings_video(tmp_path / "one.mp4", [("deer", 1, 1.0, 5.0)], duration_s=10.0)
    db = tmp_path / "refusing.sqlite"
    settings = settings_from_dict({"source": {"uri": str(clip.path)}}, base_dir=tmp_path)
    store = Store.open(db)
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.executescript(
        "CREATE TABLE refuse (events INTEGER); INSERT INTO refuse VALUES (1);"
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events WHEN (SELECT events FROM refuse) "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;"
    )

    def unblock() -> None:
        other.execute("UPDATE refuse SET events = 0")

    handler = _Unblocks(unblock if recovers else None)
    logging.getLogger("trapcount.service").addHandler(handler)
    try:
        with load_classifier(model, settings.classifier) as classifier:
            return clip, process_source(settings, store, classifier), handler.messages
    finally:
        logging.getLogger("trapcount.service").removeHandler(handler)
        other.close()
        store.close()


def test_process_writes_an_event_the_database_refused_for_a_while(tmp_path, model):
    clip, result, errors = _process_while_refused(tmp_path, model, recovers=True)
    assert result.events == len(clip.events) == 1
    assert any(
        "1 event retried before the next event and at the end of the run" in m for m in errors
    )
    assert query(tmp_path / "refusing.sqlite", "SELECT count(*) FROM events") == [(1,)]


def test_process_says_what_it_could_not_write_and_how_to_count_it(tmp_path, model):
    from edge_agent.store.errors import StoreError

    with pytest.raises(StoreError) as failed:
        _process_while_refused(tmp_path, model, recovers=False)
    message = str(failed.value)
    assert "1 event could not be written" in message and "rerun the same command" in message
