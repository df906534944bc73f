"""Store: the trap's database. SQLAlchemy models, the Store (short write transactions,
queries), Alembic migrations and the fleet sync. Writes what counting produced; read by
the office."""
