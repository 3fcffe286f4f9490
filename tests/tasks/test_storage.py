"""Database tasks turn a stuck or unreachable database into one clear, retryable error."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tasks.storage import engine_for, load_account
from triplegain.errors import DatabaseUnavailable
from triplegain.settings import load_settings


def test_a_locked_table_becomes_database_unavailable(postgres_server_url: str | None) -> None:
    if postgres_server_url is None:
        pytest.skip("needs TRIPLEGAIN_TEST_POSTGRES_URL")
    settings = load_settings(database_url=postgres_server_url, statement_timeout_ms=400)
    engine = engine_for(settings)
    with engine.connect() as locker:
        locker.execute(text("BEGIN"))
        locker.execute(text("LOCK TABLE coordinator_state IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(DatabaseUnavailable, match=r"database unreachable or too slow \(load-account\)"):
            load_account.fn(settings)
        locker.execute(text("ROLLBACK"))
