"""Migrations: a database at the newest revision is recognised with one query, without loading Alembic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from triplegain.errors import StorageError
from triplegain.storage import create_db_engine, database, migrate


def test_the_head_read_from_the_files_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))

    assert database.head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_database_at_the_head_is_not_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'tg.db'}")
    migrate(engine)  # a new database: the full Alembic upgrade
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            database.head_revision()
        )
    monkeypatch.setitem(sys.modules, "alembic.command", None)  # importing it now would raise

    migrate(engine)


def test_an_older_database_is_upgraded(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'tg.db'}")
    migrate(engine)
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")

    migrate(engine)

    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM hodl_bag_history")).scalar() == 0


def test_two_heads_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, down in (("a", None), ("b", "a"), ("c", "a")):
        down_text = f'"{down}"' if down else "None"
        (versions / f"{name}.py").write_text(
            f'revision: str = "{name}"\ndown_revision: str | None = {down_text}\n'
        )
    monkeypatch.setattr(database, "_MIGRATIONS", tmp_path)

    with pytest.raises(StorageError, match=r"one head.*\['b', 'c'\]"):
        database.head_revision()
