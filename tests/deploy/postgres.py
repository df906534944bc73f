"""A real PostgreSQL server for the sync tests.

``TRAPCOUNT_TEST_PG_URL`` (exported by ``.ci/start-postgres``, which ``.ci/run`` sources) is
used when set; with ``TRAPCOUNT_TEST_PG_DIR`` too, the tests may also stop and restart that
server. Otherwise the tests start their own throwaway server with the same script. Each
test gets a database of its own. No PostgreSQL at all: the tests are skipped with the reason.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / ".ci" / "start-postgres"


@dataclass
class PgServer:
    url: str  # an admin URL (password included) of the server's first database
    control: Path | None  # the folder holding `pgctl`; None: someone else's server
    owned: bool = False

    def engine(self, database: str | None = None):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        url = make_url(self.url)
        if database is not None:
            url = url.set(database=database)
        return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL (with the password)."""
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = f"tc_{uuid.uuid4().hex[:12]}"
        engine = self.engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop(self, database: str, roles: tuple[str, ...] = ()) -> None:
        """Remove a test's database (and roles), even with sessions still open."""
        from sqlalchemy import text

        engine = self.engine()
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                for role in roles:
                    connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        finally:
            engine.dispose()

    def pgctl(self, *args: str) -> None:
        if self.control is None:
            pytest.skip("the test needs to stop the server; TRAPCOUNT_TEST_PG_DIR is unset")
        subprocess.run(
            [str(self.control / "pgctl"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        """Stop the server the hard way (a crash or a cut link, as the trap sees it)."""
        self.pgctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self.pgctl("-w", "-t", "60", "start")

    def close(self) -> None:
        if self.owned and self.control is not None:
            subprocess.run(
                [str(self.control / "pgctl"), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
            subprocess.run(["rm", "-rf", str(self.control)], check=False)


def start_server() -> PgServer:
    """The CI server, else one started with .ci/start-postgres; skips when neither works."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[fleet]')")
    url = os.environ.get("TRAPCOUNT_TEST_PG_URL")
    if url:
        control = os.environ.get("TRAPCOUNT_TEST_PG_DIR")
        return PgServer(url, Path(control) if control else None)
    script = (
        f'set -euo pipefail; source "{START_SCRIPT}" >&2; trap - EXIT; '
        'printf "%s\\n%s\\n" "$TRAPCOUNT_TEST_PG_URL" "$TRAPCOUNT_TEST_PG_DIR"'
    )
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
        pytest.skip(
            "TRAPCOUNT_TEST_PG_URL is unset and no PostgreSQL server could be started "
            f"(.ci/start-postgres: {reason})"
        )
    url, control = result.stdout.strip().splitlines()[-2:]
    return PgServer(url, Path(control), owned=True)


_shared: list[PgServer] = []
_skipped: list[str] = []


def shared_server() -> PgServer:
    """One server for the whole test session (started on first use, stopped at exit)."""
    if _skipped:
        pytest.skip(_skipped[0])
    if not _shared:
        try:
            server = start_server()
        except pytest.skip.Exception as exc:
            _skipped.append(str(exc.msg))
            raise
        _shared.append(server)
        atexit.register(server.close)
    return _shared[0]
