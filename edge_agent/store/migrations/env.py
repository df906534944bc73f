"""Alembic environment for trapcount's schema.

Run programmatically by :meth:`edge_agent.store.Store.upgrade`, which passes an open
connection (already inside its write transaction) in ``config.attributes["connection"]``.
For a developer generating a new revision, ``alembic -x db=PATH revision --autogenerate``
with a ``script_location`` pointing here also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from edge_agent.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    db = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option(
        "sqlalchemy.url"
    )
    url = db if db and "://" in db else f"sqlite:///{db}"
    engine = create_engine(url)
    with engine.begin() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("trapcount migrations run online only (Store.open upgrades the database)")
run_migrations_online()
