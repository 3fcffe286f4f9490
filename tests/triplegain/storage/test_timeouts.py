"""A database that stops answering fails the operation within its timeout instead of hanging."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from triplegain.settings import load_settings
from triplegain.storage import create_db_engine, migrate, unit_of_work
from triplegain.storage.accounts import load_account, record_state_change


def test_a_locked_postgres_table_fails_within_the_statement_timeout(postgres_server_url: str | None) -> None:
    if postgres_server_url is None:
        pytest.skip("needs TRIPLEGAIN_TEST_POSTGRES_URL")
    holder = create_db_engine(postgres_server_url)
    migrate(holder)
    engine = create_db_engine(postgres_server_url, statement_timeout_ms=500)
    with holder.connect() as locker:
        locker.execute(text("BEGIN"))
        locker.execute(text("LOCK TABLE coordinator_state IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(OperationalError, match=r"statement timeout"), unit_of_work(engine) as s:
            load_account(s, load_settings().broker.initial_balances)
        locker.execute(text("ROLLBACK"))
    with engine.connect() as conn:
        configured = conn.execute(text("SHOW statement_timeout")).scalar()
    holder.dispose()
    engine.dispose()
    assert configured == "500ms"  # the statement timeout that fired is the configured one, not a default


def test_a_locked_sqlite_file_fails_within_the_busy_timeout(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from triplegain.control import transition
    from triplegain.models.enums import CoordinatorState

    path = tmp_path / "locked.db"
    engine = create_db_engine(f"sqlite:///{path}", busy_timeout_ms=300)
    migrate(engine)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    change = transition(CoordinatorState.RUNNING, "pause", "ops", "test", datetime.now(UTC))
    with pytest.raises(OperationalError, match="database is locked"), unit_of_work(engine) as s:
        record_state_change(s, change)  # type: ignore[arg-type]
    with engine.connect() as conn:
        configured = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    blocker.execute("ROLLBACK")
    blocker.close()
    engine.dispose()
    assert configured == 300  # it gave up after the configured wait, not the 5 s default
