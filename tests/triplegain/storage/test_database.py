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


def test_runs_migrating_a_fresh_postgresql_database_at_once_all_succeed(
    postgres_server_url: str | None,
) -> None:
    """Two workers' first runs on a new database: without a lock the second CREATE TABLE failed on a
    duplicate (seen in the work-pool end-to-end test); with it, one migrates and the others find the head."""
    if postgres_server_url is None:
        pytest.skip("needs TRIPLEGAIN_TEST_POSTGRES_URL")
    import threading
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_server_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tg_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engines = [
        create_db_engine(base.set(database=name).render_as_string(hide_password=False)) for _ in range(4)
    ]
    errors: list[BaseException] = []
    gate = threading.Barrier(len(engines))

    def first_run(engine: object) -> None:
        gate.wait()
        try:
            migrate(engine)  # type: ignore[arg-type]
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=first_run, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        with engines[0].connect() as c:
            assert (
                c.execute(text("SELECT version_num FROM alembic_version")).scalar()
                == database.head_revision()
            )
    finally:
        for engine in engines:
            engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
