"""The database Block: used when saved, environment otherwise, the secret never shown."""

from __future__ import annotations

import pytest

from blocks.database import DatabaseConfig, with_database_from_block
from triplegain.errors import ConfigError
from triplegain.settings import load_settings


def test_without_a_block_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_BLOCK", "not-saved")
    settings = load_settings(database_url="sqlite:///env.db")

    resolved, source = with_database_from_block(settings)

    assert source == "environment" and resolved is settings


def test_saved_block_wins_and_keeps_the_password_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_BLOCK", "pg-test")
    DatabaseConfig(url="postgresql+psycopg://tg:hunter2@db:5432/tg").save("pg-test", overwrite=True)  # type: ignore[arg-type]

    resolved, source = with_database_from_block(load_settings())

    assert source == "block:pg-test"
    assert resolved.database_url.get_secret_value() == "postgresql+psycopg://tg:hunter2@db:5432/tg"
    assert "hunter2" not in repr(resolved) and "hunter2" not in repr(DatabaseConfig.load("pg-test"))


def test_block_with_an_unsupported_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_BLOCK", "bad-url")
    DatabaseConfig(url="mysql://root:hunter2@db/tg").save("bad-url", overwrite=True)  # type: ignore[arg-type]

    with pytest.raises(ConfigError, match=r"block bad-url\.url.*unsupported") as e:
        with_database_from_block(load_settings())

    assert "hunter2" not in str(e.value)
