"""Test-wide setup. Prefect reads its settings at import, so its environment is fixed first."""

from __future__ import annotations

import os
import tempfile

for _key in [k for k in os.environ if k.startswith("TRIPLEGAIN_") and k != "TRIPLEGAIN_TEST_POSTGRES_URL"]:
    del os.environ[_key]  # a developer's own configuration must not leak into tests
# The default offline model opens no position (issue 13: on the shared history, agreeing evidence never paid
# for a trade's costs). The suite credits the evidence so that the trading paths (orders, positions, exits,
# breakers) run on the bundled data; tests of the defaults drop it with the `default_decisions` fixture.
TRADING_PROFILE = {
    "TRIPLEGAIN_DECISION__OFFLINE__EVIDENCE_EDGE": "1",
    "TRIPLEGAIN_TECHNICAL__MIN_NET_VOTES": "4",
}
os.environ.update(TRADING_PROFILE)
for _key in [k for k in os.environ if k.endswith("_API_KEY")]:
    del os.environ[_key]  # a real provider key must never turn a test into a network call
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="triplegain-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.fakes.llm_server import FakeLLMServer  # noqa: E402
from triplegain.market import ReplaySource  # noqa: E402
from triplegain.settings import Settings, load_settings  # noqa: E402
from triplegain.storage import create_db_engine, migrate  # noqa: E402

POSTGRES_ENV = "TRIPLEGAIN_TEST_POSTGRES_URL"
JUNE_FIRST_NOON = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="session")
def replay() -> ReplaySource:
    """The bundled sample data (2024-04-01 to 2024-06-30), parsed once."""
    return ReplaySource()


@pytest.fixture
def default_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped defaults of the decision, without the suite's trading profile."""
    for key in TRADING_PROFILE:
        monkeypatch.delenv(key)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings on a fresh SQLite file."""
    return load_settings(database_url=f"sqlite:///{tmp_path / 'triplegain.db'}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this session, dropped afterwards; None when not configured."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        yield None
        return
    import psycopg

    name = f"triplegain_test_{uuid.uuid4().hex[:10]}"
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server_url: str | None
) -> Iterator[str]:
    """Each storage test runs on SQLite and on real PostgreSQL (skipped, with the reason, without it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'storage.db'}"
        return
    if postgres_server_url is None:
        pytest.skip(
            f"PostgreSQL storage tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
        )
    yield postgres_server_url
    engine = create_db_engine(postgres_server_url)
    with engine.begin() as conn:
        from triplegain.storage.tables import Base

        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    engine = create_db_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness for the session (about 8 s to start), flow-run heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A local fake LLM server (OpenAI and Anthropic wire formats), scripted by the test."""
    with FakeLLMServer() as s:
        yield s


@pytest.fixture
def project_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The flow's database, chosen through the environment as a user would."""
    url = f"sqlite:///{tmp_path / 'project.db'}"
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", url)
    return url
