"""A database that stops answering fails the operation within its timeout instead of hanging."""

from __future__ import annotations

import sqlite3
import time
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
        start = time.monotonic()
        with pytest.raises(OperationalError, match=r"timeout|canceling statement"), unit_of_work(engine) as s:
            load_account(s, load_settings().broker.initial_balances)
        elapsed = time.monotonic() - start
        locker.execute(text("ROLLBACK"))
    holder.dispose()
    engine.dispose()
    assert elapsed < 3


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
    start = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"), unit_of_work(engine) as s:
        record_state_change(s, change)  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    blocker.execute("ROLLBACK")
    blocker.close()
    engine.dispose()
    assert elapsed < 3
