"""One settings loader for every entry point: the database block is read whenever a Prefect API is
configured, however it is configured, so a command and the deployments always share one database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.database import DatabaseConfig
from flows.settings import load_run_settings, prefect_api_url
from tests.flows.fresh_process import run_cli
from triplegain.errors import ConfigError
from triplegain.models.enums import CoordinatorState
from triplegain.settings import load_settings
from triplegain.storage import create_db_engine, migrate, unit_of_work
from triplegain.storage.accounts import load_account

ROOT = Path(__file__).resolve().parents[2]


def saved_block(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database block under a name of this test's own (the session's server is shared)."""
    name = f"db-{uuid.uuid4().hex[:8]}"
    DatabaseConfig(url=url).save(name)  # type: ignore[arg-type]
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_BLOCK", name)
    return name


def state_of(url: str) -> CoordinatorState:
    engine = create_db_engine(url)
    migrate(engine)
    with unit_of_work(engine) as session:
        state = load_account(session, load_settings(database_url=url).broker.initial_balances).coordinator
    engine.dispose()
    return state


def test_with_an_api_configured_the_block_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved_block(f"sqlite:///{tmp_path / 'block.db'}", monkeypatch)
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")

    settings = load_run_settings(symbols=["BTC/USDT"])

    assert settings.database_url.get_secret_value() == f"sqlite:///{tmp_path / 'block.db'}"
    assert settings.market.symbols == ["BTC/USDT"]


def test_without_an_api_the_configured_url_is_used_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved_block(f"sqlite:///{tmp_path / 'block.db'}", monkeypatch)
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        api = prefect_api_url()
        settings = load_run_settings()

    assert api is None
    assert settings.database_url.get_secret_value() == f"sqlite:///{tmp_path / 'env.db'}"


def test_an_unreachable_api_is_a_config_error_not_another_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_BLOCK", "anything")

    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        pytest.raises(ConfigError, match=r"block anything.*reachable Prefect API"),
    ):
        load_run_settings()


def test_pause_reaches_the_block_database_when_the_api_url_comes_from_a_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block_db, env_db = f"sqlite:///{tmp_path / 'trading.db'}", f"sqlite:///{tmp_path / 'default.db'}"
    name = saved_block(block_db, monkeypatch)
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        f'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "{PREFECT_API_URL.value()}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "TRIPLEGAIN_DATABASE_URL": env_db, "TRIPLEGAIN_DATABASE_BLOCK": name}

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flows.cli import main; main()",
            "pause",
            "--reason",
            "FOMC",
            "--by",
            "ana",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert state_of(block_db) is CoordinatorState.PAUSED
    assert not (tmp_path / "default.db").exists()  # the default database was never even opened


OFFLINE_COMMANDS = [
    ["status"],
    ["pause", "--reason", "lunch", "--by", "ana"],
    ["dca", "status"],
    ["leaderboard"],
    ["backtest", "--start", "2024-06-28T00:00Z", "--end", "2024-06-28T06:00Z"],
    ["candles", "show", "--symbol", "BTC/USDT"],
]


@pytest.mark.parametrize("command", OFFLINE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_commands_that_run_no_flow_never_import_prefect(command: list[str], tmp_path: Path) -> None:
    """Without a configured API, `status`, `pause`, `dca status`, `leaderboard`, `backtest` and `candles`
    neither start a temporary server nor import Prefect at all (it alone costs seconds)."""
    done = run_cli(command, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 0 prefect imported: False"), done.stdout + done.stderr
    assert {p.name for p in tmp_path.iterdir() if p.is_file()} <= {"tg.db"}  # nothing else written here
    if command[0] == "backtest":
        written = tmp_path / "data/triplegain/backtests/backtest-20240628T0000Z-20240628T0600Z"
        assert written.with_suffix(".json").is_file() and written.with_suffix(".png").is_file()
        assert f"result: {written}.json" in done.stdout


def test_an_api_url_in_the_profiles_file_or_the_environment_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import settings as run_settings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.setattr(run_settings, "sys", type("S", (), {"modules": {}})())
    assert not run_settings._api_may_be_configured()

    (home / "profiles.toml").write_text('active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://h/api"\n')
    assert run_settings._api_may_be_configured()
    (home / "profiles.toml").unlink()
    (tmp_path / "prefect.toml").write_text("[api]\nurl = 'http://h/api'\n")
    assert run_settings._api_may_be_configured()
    (tmp_path / "prefect.toml").unlink()
    monkeypatch.setenv("PREFECT_API_URL", "http://h/api")
    assert run_settings._api_may_be_configured()
