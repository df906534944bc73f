"""The service under systemd and in a fleet: sd_notify over a real datagram socket, the
scheduled sync to a real PostgreSQL server, counting that goes on while the network is
down, and a model pushed the way the fleet playbook pushes it (a directory swap)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from edge_agent.config import settings_from_dict
from edge_agent.service import notify
from edge_agent.service.daemon import Service
from edge_agent.service.model import load_classifier
from edge_agent.store.database import Store
from tests.deploy.postgres import shared_server
from tests.helpers.media import crossings_video, tiny_model_dir, wait_for


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def model_b(request):
    return tiny_model_dir(request.config, seed=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet-clip")
    plan = [("deer", 1, 1.0 + 6 * i, 3.0) for i in range(4)]
    return crossings_video(folder / "clip.mp4", plan, duration_s=26.0, fps=6.0)


class NotifySocket:
    """What systemd listens on: a Unix datagram socket; collects the messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)

    def messages(self) -> list[str]:
        found = []
        while True:
            try:
                found += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(monkeypatch):
    # A short path: AF_UNIX paths are limited to 107 bytes.
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    listener = NotifySocket(folder / f"tc-notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping at least every second
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield listener
    listener.close()
    listener.path.unlink(missing_ok=True)


def make_service(tmp_path: Path, model_dir: Path, source: Path, **sections) -> Service:
    data = {
        "trap": {"id": "trap-svc"},
        "source": {"uri": str(source)},
        "classifier": {"model_dir": str(model_dir)},
        "storage": {"db_path": str(tmp_path / "svc.sqlite")},
        "service": {"heartbeat_s": 5, "shutdown_timeout_s": 2, "model_check_s": 1},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    settings = settings_from_dict(data, base_dir=tmp_path)
    store = Store.open(settings.storage.db_path)
    classifier = load_classifier(model_dir, settings.classifier)
    return Service(settings, store=store, classifier=classifier, model_dir=model_dir)


def run_until(service: Service, condition, timeout: float, what: str) -> None:
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_for(condition, timeout, what)
    finally:
        service.stop()
        thread.join(20)
        service.store.close()
        service.classifier.close()
    assert not thread.is_alive()


def test_notify_outside_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify.ready() is False and notify.watchdog() is False
    assert notify.watchdog_interval_s() is None
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    assert notify.ready() is False  # nobody listening: never an error


def test_notify_abstract_socket_and_watchdog_for_another_pid(monkeypatch):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"trapcount-test-{os.getpid()}-{time.monotonic_ns()}"
    listener.bind("\0" + name)
    listener.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.stopping("bye") is True
        assert listener.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    finally:
        listener.close()
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # systemd meant another process
    assert notify.watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval_s() == 15.0


def test_service_notifies_systemd_and_syncs_to_the_central_database(
    tmp_path, model, clip, systemd, request
):
    server = shared_server()
    central = server.create_database()
    request.addfinalizer(lambda: server.drop(make_url(central).database))
    service = make_service(tmp_path, model, clip.path, sync={"url": central, "interval_s": 10})
    with Store.open(central) as fleet:
        run_until(
            service,
            lambda: fleet.heartbeats(limit=1),
            60,
            "a heartbeat in the central database",
        )
        deployments = [d.trap_id for d in fleet.deployments()]
        models = [m["sha256"] for m in fleet.model_versions()]
    assert deployments == ["trap-svc"]
    assert models == [service.classifier.sha256]
    messages = systemd.messages()
    assert messages[0] == "READY=1" and messages[1].startswith("STATUS=counting: trap trap-svc")
    assert messages.count("WATCHDOG=1") >= 1
    assert "STOPPING=1" in messages
    assert messages.index("STOPPING=1") > messages.index("WATCHDOG=1")


def test_counting_goes_on_while_the_central_database_is_unreachable(tmp_path, model, clip, caplog):
    service = make_service(
        tmp_path,
        model,
        clip.path,
        sync={"url": "postgresql+psycopg://trap:s3cret@127.0.0.1:9/fleet", "interval_s": 10},
        events={"event_gap_s": 1.5},
    )

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if "sync failed" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="trapcount"):
        run_until(
            service,
            lambda: service.sink.written >= 2 and failures(),
            60,
            "two events counted and a failed sync",
        )
    found = failures()
    assert len(found) == 1  # then it backs off (sync.backoff_initial_s = 60)
    assert "next try in about 60 s" in found[0]
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


def test_a_model_pushed_by_directory_swap_is_hot_reloaded(tmp_path, model, model_b, clip):
    """The fleet playbook's layout: models/<release>/ folders and a `current` symlink
    swapped with one rename, so the agent never sees a model without its manifest."""
    models = tmp_path / "models"
    for name, source in (("a", model), ("b", model_b)):
        (models / name).mkdir(parents=True)
        for file in ("model.tflite", "model.json"):
            (models / name / file).write_bytes((source / file).read_bytes())
    (models / "current").symlink_to("a")
    service = make_service(tmp_path, models / "current", clip.path)
    first = service.classifier.sha256
    try:
        (models / ".current.new").symlink_to("b")
        os.replace(models / ".current.new", models / "current")
        service._model_check_job()
        assert service.classifier.sha256 != first
        assert [m["sha256"] for m in service.store.model_versions()] == [
            first,
            service.classifier.sha256,
        ]
    finally:
        service.store.close()
        service.classifier.close()


def test_a_model_caught_half_copied_is_tried_again_not_refused(
    tmp_path, model, model_b, clip, caplog
):
    """A plain two-file copy (no directory swap) seen between its two files: the files
    changed while the model was loading, so that is a copy in progress, not a bad model."""
    live = tmp_path / "model"
    live.mkdir()
    for file in ("model.tflite", "model.json"):
        (live / file).write_bytes((model / file).read_bytes())
    service = make_service(tmp_path, live, clip.path)
    first = service.classifier.sha256
    try:
        with caplog.at_level(logging.INFO, logger="trapcount"):
            # B's manifest has arrived, A's model file is still there; the check that
            # noticed the change saw the files as they were before.
            (live / "model.json").write_bytes((model_b / "model.json").read_bytes())
            assert service.reload_model(("the files before the copy",)) is False
            assert service.classifier.sha256 == first
            # The copy completes; the next check takes model B.
            (live / "model.tflite").write_bytes((model_b / "model.tflite").read_bytes())
            service._model_check_job()
        assert service.classifier.sha256 != first
        assert "trying again at the next check" in caplog.text
        assert "refused" not in caplog.text
    finally:
        service.store.close()
        service.classifier.close()
