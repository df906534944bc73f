"""Fleet sync against a real PostgreSQL server: trap databases built with the real Store API
in tmp_path, pushed with `trapcount sync` / ``edge_agent.store.sync``, read back with the report
code. Two traps at once; the server stopped in the middle; reruns that change nothing;
replaced and deleted events; passwords that never show."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from edge_agent.config import TrapSettings, settings_from_dict
from edge_agent.counting.events import ClosedEvent, LabelObservation
from edge_agent.manifest import Manifest, TensorSpec
from edge_agent.store.database import Store
from edge_agent.store.sync import SyncError, parse_url, pending_changes, resolve_target, sync
from tests.deploy.postgres import shared_server
from tests.helpers.media import subprocess_env, trapcount_command
from tests.helpers.schema import HEAD

T0 = datetime(2024, 6, 1, 20, 0, 0, tzinfo=UTC)
SHARED_SHA = "5a" * 32  # both traps run this model
# The footage (events.source_key) a `process` run found the events in, and other footage.
CLIP = "sha256:" + "c1" * 20
OTHER_CLIP = "sha256:" + "c2" * 20
LABELS = ("badger", "deer", "fox", "hare")


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture
def roles() -> list[str]:
    """Roles a test creates, dropped with its database."""
    return []


@pytest.fixture
def central(server, roles):
    """A fresh central database on the server (its URL, password included)."""
    url = server.create_database()
    yield url
    server.drop(make_url(url).database, tuple(roles))


def manifest(sha: str) -> Manifest:
    return Manifest(
        labels=list(LABELS),
        input=TensorSpec([-1, 32, 32, 3], "uint8", 1.0, 0),
        output=TensorSpec([-1, len(LABELS)], "uint8", 1 / 256, 0),
        sha256=sha,
        arch="test",
        accuracy={"float": 0.9, "int8": 0.88},
    )


def closed_event(start: datetime, sha: str, **counts: int) -> ClosedEvent:
    return ClosedEvent(
        start=start,
        end=start + timedelta(seconds=12),
        frames=120,
        observations=tuple(
            LabelObservation(label=label, max_n=n, frames=8 * n, mean_confidence=0.8, tracks=n)
            for label, n in sorted(counts.items())
        ),
        model_sha256=sha,
    )


def make_trap(path: Path, trap_id: str, events: int, seed: int, second_model: bool = False):
    """A trap database as the agent writes it: a deployment, one or two models, events
    (some with two labels), the roll-up and heartbeats."""
    with Store.open(path) as store:
        trap = TrapSettings(id=trap_id, location_name=f"{trap_id} meadow", timezone="Europe/Zurich")
        deployment = store.ensure_deployment(trap, now=T0)
        store.register_model(manifest(SHARED_SHA), now=T0)
        own_sha = f"{seed:02x}" * 32
        if second_model:
            store.register_model(manifest(own_sha), now=T0)
        for i in range(events):
            sha = own_sha if second_model and i >= events // 2 else SHARED_SHA
            counts = {LABELS[(i + seed) % 4]: 1 + (i * seed) % 3}
            if i % 5 == 0:
                counts[LABELS[(i + seed + 1) % 4]] = 1
            start = T0 + timedelta(minutes=7 * i + seed)
            store.write_event(
                closed_event(start, sha, **counts), deployment, now=start, source_key=CLIP
            )
        store.rollup(minutes=15)
        for i in range(events // 4):
            store.write_heartbeat(
                deployment,
                time=T0 + timedelta(minutes=15 * i),
                frames=100 * i,
                fps=9.5,
                open_events=0,
                model_sha256=SHARED_SHA,
            )
    return path


def report(target: str) -> dict:
    """What a report is made of, read with the store's queries: per label the sum of MaxN
    (from the events and from the roll-up), the events, the deployments."""
    with Store.open(target, create=False) as store:
        counts: Counter = Counter()
        for row in store.counts():
            counts[row.label] += row.count
        return {
            "totals": store.totals(),
            "counts": counts,
            "events": store.event_rows(),
            "deployments": store.deployments(),
        }


def total_by_label(*reports: dict) -> Counter:
    total: Counter = Counter()
    for data in reports:
        total.update(data["totals"])
    return total


def counts_by_label(*reports: dict) -> Counter:
    total: Counter = Counter()
    for data in reports:
        total.update(data["counts"])
    return total


def cli_report(*databases: str, cwd: Path) -> dict:
    """`trapcount report --db ... --format json`."""
    args = [arg for db in databases for arg in ("--db", db)]
    result = subprocess.run(
        trapcount_command("report", *args, "--format", "json"),
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def table_counts(url: str) -> dict[str, int]:
    with Store.open(url, create=False) as store, store.engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in (
                "deployments",
                "model_versions",
                "events",
                "observations",
                "counts",
                "heartbeats",
            )
        }


def central_events(url: str, trap_id: str) -> list[tuple]:
    """(start, label, max_n, model sha, footage) of one trap's events in the central
    database."""
    with Store.open(url, create=False) as store:
        deployments = [d.id for d in store.deployments() if d.trap_id == trap_id]
        return sorted(
            (r.start, r.label, r.max_n, r.model_sha256, r.source_key)
            for dep in deployments
            for r in store.event_rows(deployment_id=dep)
        )


def local_events(path: Path) -> list[tuple]:
    with Store.open(path, create=False) as store:
        return sorted(
            (r.start, r.label, r.max_n, r.model_sha256, r.source_key) for r in store.event_rows()
        )


def run_sync_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        trapcount_command("sync", *args),
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- tests --------------------------------------------------------------------------------


def test_two_traps_sync_at_once_and_the_fleet_report_is_their_sum(tmp_path, central):
    trap_a = make_trap(tmp_path / "a.sqlite", "trap-a", events=40, seed=1, second_model=True)
    trap_b = make_trap(tmp_path / "b.sqlite", "trap-b", events=31, seed=2)
    # Two `trapcount sync` processes at the same time, into an empty central database
    # (both race to create its schema), in small batches.
    procs = [
        subprocess.Popen(
            trapcount_command("sync", "--db", str(db), "--to", central, "--batch-size", size),
            cwd=tmp_path,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for db, size in ((trap_a, "7"), (trap_b, "5"))
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "synced " in out and "batch 2:" in err
    password = make_url(central).password
    assert all(password not in out + err for out, err in outputs)

    a, b, fleet = report(str(trap_a)), report(str(trap_b)), report(central)
    assert fleet["totals"] == dict(total_by_label(a, b))
    assert counts_by_label(fleet) == counts_by_label(a, b)
    assert len(fleet["events"]) == len(a["events"]) + len(b["events"])
    assert sorted(d.trap_id for d in fleet["deployments"]) == ["trap-a", "trap-b"]
    assert central_events(central, "trap-a") == local_events(trap_a)
    assert central_events(central, "trap-b") == local_events(trap_b)
    rows = table_counts(central)
    assert rows["model_versions"] == 2  # the shared model once, trap A's own once
    assert rows["heartbeats"] == 40 // 4 + 31 // 4

    # `trapcount report` reads the fleet from the URL: the same totals as the report of
    # the two trap databases read together.
    fleet_json = cli_report(central, cwd=tmp_path)
    assert fleet_json["totals"] == fleet["totals"]
    assert fleet_json["totals"] == cli_report(str(trap_a), str(trap_b), cwd=tmp_path)["totals"]
    assert password not in json.dumps(fleet_json)

    # A rerun has nothing to push and changes nothing.
    before = table_counts(central)
    again = run_sync_cli("--db", str(trap_a), "--to", central, cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert table_counts(central) == before
    assert report(central)["totals"] == fleet["totals"]


def test_the_server_stopped_mid_sync_loses_and_duplicates_nothing(tmp_path, server, central):
    trap = make_trap(tmp_path / "trap.sqlite", "trap-c", events=60, seed=3)
    target = parse_url(central)
    stopped = threading.Event()

    def stop_the_server_after_the_third_batch(batch: int, _units: int) -> None:
        if batch == 3:
            server.stop()
            stopped.set()

    try:
        with Store.open(trap) as store:
            with pytest.raises(SyncError) as info:
                sync(store, target, batch_size=8, on_batch=stop_the_server_after_the_third_batch)
            assert stopped.is_set()
            message = str(info.value)
            assert "\n" not in message and "failed after 24 change(s)" in message
            assert target.url.password not in message
            left = pending_changes(store, target)
            assert left and left > 0
    finally:
        server.start()

    with Store.open(trap) as store:
        result = sync(store, target, batch_size=8)
        assert result.complete and result.units == left
        assert pending_changes(store, target) == 0
        assert sync(store, target).units == 0  # a rerun changes nothing
    assert central_events(central, "trap-c") == local_events(trap)
    local, fleet = report(str(trap)), report(central)
    assert fleet["totals"] == local["totals"]
    assert fleet["counts"] == local["counts"]
    rows = table_counts(central)
    assert rows["events"] == 60 and rows["heartbeats"] == 15 and rows["deployments"] == 1


def test_replaced_and_deleted_events_are_replaced_centrally(tmp_path, central):
    path = make_trap(tmp_path / "trap.sqlite", "trap-d", events=12, seed=4)
    target = parse_url(central)
    with Store.open(path) as store:
        assert sync(store, target, batch_size=5).complete
        deployment = store.deployments()[0].id
        # A `process` rerun of the same clip: events found again are rewritten (other
        # counts), the rest are deleted, a new one appears; the roll-up follows.
        keep = []
        for i in range(0, 12, 2):
            start = T0 + timedelta(minutes=7 * i + 4)
            keep.append(
                store.write_event(
                    closed_event(start, SHARED_SHA, wolf=i + 1), deployment, source_key=CLIP
                )
            )
        keep.append(
            store.write_event(
                closed_event(T0 + timedelta(minutes=3), SHARED_SHA, lynx=2),
                deployment,
                source_key=CLIP,
            )
        )
        removed = store.delete_stale_events(deployment, {CLIP}, keep)
        assert len(removed) == 6
        # Another clip with the same file time: an event starting at the same moment is
        # another event, here and centrally.
        store.write_event(
            closed_event(T0 + timedelta(minutes=3), SHARED_SHA, lynx=1),
            deployment,
            source_key=OTHER_CLIP,
        )
        store.rollup(minutes=15)
        result = sync(store, target, batch_size=4)
        assert result.complete and result.deleted >= 6
    assert central_events(central, "trap-d") == local_events(path)
    local, fleet = report(str(path)), report(central)
    assert fleet["totals"] == local["totals"] == {"lynx": 3, "wolf": 1 + 3 + 5 + 7 + 9 + 11}
    assert counts_by_label(fleet) == counts_by_label(local)
    assert table_counts(central)["events"] == 8


def test_new_rows_after_a_sync_are_pushed_incrementally(tmp_path, central):
    path = make_trap(tmp_path / "trap.sqlite", "trap-e", events=6, seed=5)
    target = parse_url(central)
    with Store.open(path) as store:
        first = sync(store, target)
        deployment = store.deployments()[0].id
        start = T0 + timedelta(days=1)
        store.write_event(closed_event(start, SHARED_SHA, deer=3), deployment)
        # The service rolls up the intervals that got events (a full roll-up would rewrite,
        # and so resend, every interval).
        store.rollup(start + timedelta(microseconds=1), since=start, minutes=15)
        store.write_heartbeat(deployment, frames=1, fps=1.0, open_events=0)
        second = sync(store, target)
    # The event, its interval's counts and the heartbeat; nothing that was already there.
    assert second.kinds == Counter({"event": 1, "count": 1, "heartbeat": 1})
    assert first.units > second.units
    assert central_events(central, "trap-e") == local_events(path)


def test_password_file_env_and_config_and_no_password_anywhere(tmp_path, central):
    path = make_trap(tmp_path / "trap.sqlite", "trap-f", events=3, seed=6)
    url = make_url(central)
    password = url.password
    secret = tmp_path / "sync.password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    bare = url._replace(password=None).render_as_string(hide_password=False)
    assert password not in bare

    # --to without a password + --password-file.
    result = run_sync_cli(
        "--db", str(path), "--to", bare, "--password-file", str(secret), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr

    # The config's sync.url + sync.password_file (relative to the config file).
    settings = settings_from_dict(
        {"sync": {"url": bare, "password_file": "sync.password"}}, base_dir=tmp_path
    )
    target = resolve_target(settings, environ={})
    assert target is not None and target.url.password == password
    assert password not in target.shown and password not in target.key
    # The environment variable wins over sync.url.
    env_target = resolve_target(settings, environ={"TRAPCOUNT_SYNC_URL": central})
    assert env_target.url.database == url.database
    assert resolve_target(settings_from_dict({}), environ={}) is None

    # Nothing on the trap holds the password.
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert password not in dump and url.database in dump

    # A wrong password: one line, exit 1, and the wrong password is not shown either.
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password-4711\n")
    wrong.chmod(0o600)
    result = run_sync_cli(
        "--db", str(path), "--to", bare, "--password-file", str(wrong), cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "password authentication failed" in lines[-1]
    assert "not-the-password-4711" not in result.stderr + result.stdout


def test_a_password_file_open_to_everyone_is_refused_unread(tmp_path):
    """As ssh refuses such a key and libpq such a ~/.pgpass; 0600 and the group-readable
    0640 that deploy/ gives root:trapcount stay allowed. No server needed: it stops first."""
    from edge_agent.store.sync import read_password_file

    secret = tmp_path / "sync.password"
    secret.write_text("pw-4711\n")
    for mode in (0o600, 0o640, 0o400):
        secret.chmod(mode)
        assert read_password_file(secret) == "pw-4711"
    for mode in (0o644, 0o604, 0o666, 0o642):
        secret.chmod(mode)
        with pytest.raises(SyncError) as info:
            read_password_file(secret)
        assert str(info.value) == (
            f"password file {secret} is open to everyone (mode {mode:04o}); "
            f"chmod 0600 {secret} (or 0640 to share it with its group)"
        )
    secret.chmod(0o644)  # as a plain write leaves it under the usual umask
    path = make_trap(tmp_path / "trap.sqlite", "trap-p", events=1, seed=9)
    bare = "postgresql+psycopg://trap@127.0.0.1:9/fleet"
    result = run_sync_cli(
        "--db", str(path), "--to", bare, "--password-file", str(secret), cwd=tmp_path
    )
    assert result.returncode == 2  # a configuration problem
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: password file {secret} is open to everyone (mode 0644)")
    assert "pw-4711" not in result.stdout + result.stderr


def test_an_unreachable_server_fails_fast_in_one_line(tmp_path):
    path = make_trap(tmp_path / "trap.sqlite", "trap-g", events=2, seed=7)
    result = run_sync_cli(
        "--db",
        str(path),
        "--to",
        "postgresql+psycopg://trap:s3cret@127.0.0.1:9/fleet",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    )
    assert "s3cret" not in result.stderr and "***" in result.stderr


def test_sync_needs_a_target(tmp_path):
    path = make_trap(tmp_path / "trap.sqlite", "trap-h", events=1, seed=8)
    result = run_sync_cli("--db", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "no central database" in result.stderr


# The roles docs/deploy.md sets up: the owner creates the tables (`sync --setup`), each
# trap's role reads and writes rows only, the reviewers' role reads.
ROLES_SQL = """
CREATE ROLE {trap} LOGIN PASSWORD '{password}';
CREATE ROLE {reader} LOGIN PASSWORD '{password}';
GRANT CONNECT ON DATABASE {database} TO {trap}, {reader};
GRANT USAGE ON SCHEMA public TO {trap}, {reader};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {trap};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {trap};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};
"""


def test_setup_as_owner_then_traps_with_row_rights_only(tmp_path, server, central, roles):
    owner = make_url(central)
    setup = run_sync_cli("--to", central, "--setup", cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout.strip() == f"{parse_url(central).shown}: schema {HEAD}"

    suffix = owner.database[-8:]
    trap_role, reader_role, password = f"trap_{suffix}", f"reader_{suffix}", "trap-pw-0815"
    roles += [trap_role, reader_role]
    engine = server.engine(owner.database)
    try:
        with engine.connect() as connection:
            for statement in ROLES_SQL.format(
                trap=trap_role, reader=reader_role, password=password, database=owner.database
            ).split(";"):
                if statement.strip():
                    connection.execute(text(statement))
    finally:
        engine.dispose()

    path = make_trap(tmp_path / "trap.sqlite", "trap-r", events=9, seed=9)
    secret = tmp_path / "pw"
    secret.write_text(password)
    secret.chmod(0o600)
    as_trap = owner._replace(username=trap_role, password=None)
    result = run_sync_cli(
        "--db", str(path), "--to", as_trap.render_as_string(), "--password-file", str(secret),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    as_reader = owner._replace(username=reader_role, password=password)
    reader_report = cli_report(as_reader.render_as_string(hide_password=False), cwd=tmp_path)
    assert reader_report["totals"] == report(str(path))["totals"]


def test_the_central_schema_matches_the_models_on_postgresql(central):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from edge_agent.store.models import Base
    from edge_agent.store.sync import open_central

    store = open_central(parse_url(central))
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert store.schema_revision() == HEAD
            assert connection.scalar(select(func.count()).select_from(text("sync_changes"))) == 0
    finally:
        store.close()


def _field_trap_at_0002(path: Path) -> None:
    """A trap database as trapcount 0002 left it (plain SQL: the models are newer)."""
    with Store.open(path, migrate=False) as store:
        store.upgrade("0002")
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO deployments (id, trap_id, location_name, camera_model, timezone, "
            "start_time) VALUES (1, 'trap-old', 'meadow', 'cam', 'UTC', "
            "'2024-05-01 20:00:00.000000')"
        )
        db.execute(
            "INSERT INTO model_versions (id, sha256, labels, arch, manifest, first_seen) "
            "VALUES (1, ?, '[\"deer\"]', 'seed', '{}', '2024-05-01 20:00:00.000000')",
            (SHARED_SHA,),
        )
        for i in range(1, 4):
            start = f"2024-05-01 21:0{i}:00.000000"
            db.execute(
                "INSERT INTO events (id, deployment_id, model_version_id, start_time, end_time, "
                "frames, written_at) VALUES (?, 1, 1, ?, ?, 40, ?)",
                (i, start, start, start),
            )
            db.execute(
                "INSERT INTO observations (event_id, label, max_n, frames, mean_confidence, "
                "tracks) VALUES (?, 'deer', ?, 30, 0.75, ?)",
                (i, i, i),
            )
    db.close()


def test_a_field_trap_upgraded_to_0003_pushes_its_old_rows(tmp_path, central):
    path = tmp_path / "field.sqlite"
    _field_trap_at_0002(path)
    with Store.open(path) as store:  # upgrades to the head
        assert store.schema_revision() == HEAD
        store.rollup(minutes=15)
        result = sync(store, parse_url(central), batch_size=2)
    assert result.complete and result.kinds["event"] == 3
    assert central_events(central, "trap-old") == local_events(path)
    assert report(central)["totals"] == {"deer": 6}


def test_downgrading_0003_keeps_every_row(tmp_path):
    """The downgrade drops columns in place: copying the events table would cascade-delete
    the observations."""
    from alembic import command
    from alembic.config import Config

    from edge_agent.store.database import MIGRATIONS_DIR

    path = make_trap(tmp_path / "trap.sqlite", "trap-down", events=5, seed=1)
    with Store.open(path) as store:
        before = store.totals()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert store.schema_revision() == "0002"
    db = sqlite3.connect(path)
    triggers = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    totals = dict(
        db.execute("SELECT label, sum(max_n) FROM observations GROUP BY label").fetchall()
    )
    db.close()
    assert triggers == (0,) and "origin" not in columns
    assert totals == before
    with Store.open(path) as store:  # and up again
        assert store.schema_revision() == HEAD and store.totals() == before
