"""Where `triplegain optimize` keeps its Optuna studies: beside the project's own tables.

Optuna's RDB storage manages its schema with Alembic under the version table `alembic_version`, the name
the project's own migrations use. On PostgreSQL the studies therefore live in the project database in a
schema of their own, `optuna`; a SQLite file has no schemas, so the studies of `trading.db` live in
`trading-optuna.db` beside it. Either way a study outlives the process: an interrupted search resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from triplegain.settings import Settings

SCHEMA = "optuna"


def study_location(database_url: str) -> str:
    """The storage URL of the studies for the project database at `database_url`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("an in-memory database cannot keep a study: configure a database file")
        path = Path(url.database).expanduser()
        suffix = path.suffix or ".db"
        return f"sqlite:///{path.with_name(f'{path.stem}-{SCHEMA}{suffix}')}"
    return url.render_as_string(hide_password=False)


@contextmanager
def study_storage(settings: Settings) -> Iterator[optuna.storages.RDBStorage]:
    """The Optuna storage for the configured database (created on first use), its connections closed
    on exit."""
    storage = _open(settings)
    try:
        yield storage
    finally:
        storage.engine.dispose()


def _open(settings: Settings) -> optuna.storages.RDBStorage:
    database_url = settings.database_url.get_secret_value()
    location = study_location(database_url)
    if make_url(location).get_backend_name() == "sqlite":
        Path(make_url(location).database or "").parent.mkdir(parents=True, exist_ok=True)
        timeout = settings.sqlite_busy_timeout_ms / 1000
        return optuna.storages.RDBStorage(location, engine_kwargs={"connect_args": {"timeout": timeout}})
    engine = create_engine(location)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    finally:
        engine.dispose()
    return optuna.storages.RDBStorage(
        location, engine_kwargs={"connect_args": {"options": f"-csearch_path={SCHEMA}"}}
    )
