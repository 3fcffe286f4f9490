"""Persistence: SQLAlchemy 2 tables, Alembic migrations, engines, and one module per table group.

`accounts` (coordinator state, its version guard, state changes, health), `cycles` (a run's whole chain),
`positions` (orders, fills, positions, snapshots), `dca` (plans and batches), `runs` (flow runs), `status`,
`sentiment`, `llm_calls`. Functions take a session and never commit; rules stay in the domain.
"""

from triplegain.storage.database import create_db_engine, engine_for, migrate, unit_of_work

__all__ = ["create_db_engine", "engine_for", "migrate", "unit_of_work"]
