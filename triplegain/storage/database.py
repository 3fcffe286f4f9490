"""Engines and schema migration: SQLite (WAL, busy timeout) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from triplegain.errors import DatabaseUnavailable, StorageError

if TYPE_CHECKING:
    from triplegain.settings import Settings

_MIGRATIONS = Path(__file__).parent / "migrations"
_CONNECT_TIMEOUT_SECONDS = 10
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?:: str \| None)? = "([^"]+)"', re.MULTILINE)


def create_db_engine(url: str, busy_timeout_ms: int = 5_000, statement_timeout_ms: int = 30_000) -> Engine:
    """An engine for `url`; creates the SQLite file's directory, sets timeouts so nothing hangs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        return engine
    options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS, "options": options},
    )


def insert_ignoring_conflicts(engine: Engine | Connection, table: Any) -> Any:
    """INSERT into `table` that skips rows whose key is already there (ON CONFLICT DO NOTHING), on
    PostgreSQL and SQLite alike: what concurrent writers of the same rows use instead of racing."""
    if engine.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


_MIGRATION_LOCK = 0x7472_6970_6C65  # "triple": the advisory lock key every TripleGain migration takes


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent). A database already there is
    recognised with one query, without loading Alembic (which costs a short command a second)."""
    if _revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Runs starting together on a fresh database (two workers) would both create the tables,
                # and the second would fail on a duplicate; the first migrates, the others wait and find
                # the schema at head. Released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as e:
        raise DatabaseUnavailable(
            f"cannot reach {engine.url.render_as_string(hide_password=True)}: {e.orig}"
        ) from e
    except SQLAlchemyError as e:
        raise StorageError(f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {e}") from e


def head_revision() -> str:
    """The newest migration's revision, read from the migration files (the one no other revises)."""
    revisions, revised = set(), set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        if found := _REVISION.search(source):
            revisions.add(found.group(1))
        if found := _DOWN_REVISION.search(source):
            revised.add(found.group(1))
    heads = revisions - revised
    if len(heads) != 1:
        raise StorageError(f"the migrations must have one head, they have {sorted(heads)}")
    return heads.pop()


def _revision(engine: Engine) -> str | None:
    """The database's Alembic revision; None when it has none yet (or cannot say)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # no table yet, or unreachable: the full migration says which
        return None


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        yield session


_engines: dict[tuple[str, int, int], Engine] = {}
_engines_lock = threading.Lock()


def engine_for(settings: Settings) -> Engine:
    """The process's engine for the configured database, migrated to the newest schema on first use."""
    key = (
        settings.database_url.get_secret_value(),
        settings.sqlite_busy_timeout_ms,
        settings.statement_timeout_ms,
    )
    with _engines_lock:
        if key not in _engines:
            engine = create_db_engine(*key)
            migrate(engine)
            _engines[key] = engine
        return _engines[key]
