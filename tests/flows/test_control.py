"""Pause, resume, halt and status from Python and the CLI, and what the trading cycle does about them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows import control
from flows.cli import app
from flows.trading_cycle import trading_cycle
from triplegain.errors import ControlError
from triplegain.models.enums import CoordinatorState, CycleStatus
from triplegain.storage import create_db_engine, migrate, unit_of_work
from triplegain.storage.tables import CoordinatorEventRow, OrderRow

BUYING_HOUR = "2024-06-30T20:00Z"


def rows(url: str, table: type) -> list:
    engine = create_db_engine(url)
    migrate(engine)
    with unit_of_work(engine) as s:
        found = list(s.scalars(select(table)))
    engine.dispose()
    return found


def test_a_paused_coordinator_analyses_but_places_no_trade(project_db: str) -> None:
    result = control.pause("FOMC at 18:00", actor="ana")

    report = trading_cycle(at=BUYING_HOUR)

    assert result.state is CoordinatorState.PAUSED and result.change is not None
    assert report.outcome("BTC/USDT").signal is not None and report.outcome("BTC/USDT").execution is None
    assert any("coordinator running -> paused by ana" in e and "FOMC" in e for e in report.notes)
    assert any("BUY not acted on, coordinator is paused" in e for e in report.notes)
    assert rows(project_db, OrderRow) == []
    [event] = rows(project_db, CoordinatorEventRow)
    assert event.published_cycle_id == report.cycle_id and event.prefect_emitted_at is not None


def test_a_halted_coordinator_skips_the_cycle_and_says_why(project_db: str) -> None:
    control.halt("drawdown review", actor="ops")

    state = trading_cycle(at=BUYING_HOUR, return_state=True)  # type: ignore[call-arg]

    report = state.result()
    assert state.name == "Skipped" and "HALTED" in (state.message or "")
    assert report.status is CycleStatus.SKIPPED and "HALTED" in report.notes[0]
    assert rows(project_db, OrderRow) == []


def test_a_skipped_cycle_values_the_crypto_it_holds(project_db: str) -> None:
    bought = trading_cycle(at=BUYING_HOUR)
    assert bought.portfolio.balances.get("BTC", 0) > 0
    control.halt("review", actor="ops")

    skipped = trading_cycle(at="2024-06-30T21:00Z")

    assert skipped.status is CycleStatus.SKIPPED and not any("no price" in n for n in skipped.notes)
    cash = skipped.portfolio.balances["USDT"]
    assert skipped.portfolio.equity > cash  # not the cash alone
    assert abs(skipped.portfolio.equity - bought.portfolio.equity) < bought.portfolio.equity / 100


def test_resuming_from_halted_needs_confirmation_and_is_recorded(project_db: str) -> None:
    control.halt("incident", actor="ops")

    with pytest.raises(ControlError, match="confirmation"):
        control.resume("fixed", actor="ops")
    resumed = control.resume("fixed", actor="ops", confirm=True)

    assert resumed.state is CoordinatorState.RUNNING
    assert [c.to_state for c in control.status().recent_changes] == [
        CoordinatorState.RUNNING,
        CoordinatorState.HALTED,
    ]


def test_a_pause_during_a_cycle_keeps_its_trades_from_committing(
    project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triplegain.storage import cycles

    real = cycles.save_cycle

    def pause_first(*args: object, **kwargs: object) -> None:
        control.pause("stop now", actor="ops")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cycles, "save_cycle", pause_first)

    report = trading_cycle(at=BUYING_HOUR)  # refused at commit, then run again on the paused account

    assert rows(project_db, OrderRow) == []
    assert report.outcome("BTC/USDT").execution is None
    assert any("not acted on, coordinator is paused" in e for e in report.notes)


def test_cli_pause_status_resume(project_db: str) -> None:
    runner = CliRunner()

    paused = runner.invoke(app, ["pause", "--reason", "maintenance", "--by", "ana"])
    shown = runner.invoke(app, ["status"])
    again = runner.invoke(app, ["pause", "--reason", "maintenance"])
    refused = runner.invoke(app, ["pause", "--reason", " "])

    assert paused.exit_code == 0 and "running -> paused by ana (now paused)" in paused.stdout
    assert shown.exit_code == 0 and "state: paused" in shown.stdout and "maintenance" in shown.stdout
    assert "hodl bags (never sold): empty" in shown.stdout
    assert "open positions: none" in shown.stdout and "┏" not in shown.stdout.split("last run")[0]
    assert again.exit_code == 0 and "already paused: nothing changed" in again.stdout
    assert refused.exit_code == 1 and "needs a reason" in refused.stderr


def test_status_shows_open_positions_with_pnl(project_db: str) -> None:
    trading_cycle(at=BUYING_HOUR)

    current = control.status()

    assert current.state is CoordinatorState.RUNNING and current.last_cycle_id == "cycle-20240630T2000Z"
    [position] = current.positions
    assert (
        position.symbol == "BTC/USDT" and position.unrealized_pnl is not None and current.equity is not None
    )


def test_a_database_that_is_down_fails_the_run_fast_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    runner = CliRunner()

    result = runner.invoke(app, ["run", "--at", BUYING_HOUR])

    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(
        "error: DatabaseUnavailable: cannot reach postgresql+psycopg://postgres@127.0.0.1:9"
    )
    assert "Connection refused" in line


def test_cli_watch_status_and_reset_breaker(project_db: str, tmp_path: object) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "tight.yaml"
    cfg.write_text("risk:\n  max_drawdown_pct: '0.02'\n")
    runner = CliRunner()
    trading_cycle(at=BUYING_HOUR, config_file=str(cfg))

    watched = runner.invoke(app, ["watch", "--at", "2024-06-30T20:07Z", "--config", str(cfg)])
    shown = runner.invoke(app, ["status", "--config", str(cfg)])
    reset = runner.invoke(app, ["reset-breaker", "--reason", "reviewed", "--by", "ana", "--config", str(cfg)])
    twice = runner.invoke(app, ["reset-breaker", "--reason", "reviewed", "--config", str(cfg)])

    assert watched.exit_code == 0, watched.stderr
    assert "watch-20240630T2005Z" in watched.stdout and "circuit_breaker" in watched.stdout
    assert "max_drawdown breaker tripped" in watched.stdout
    assert shown.exit_code == 0 and "state: halted" in shown.stdout
    assert "degradation: normal (0 LLM and 0 API failures outstanding)" in shown.stdout
    assert "market-watch" in shown.stdout and "watch-20240630T2005Z" in shown.stdout
    assert "trading-cycle" in shown.stdout and "completed" in shown.stdout
    assert reset.exit_code == 0 and "max_drawdown breaker reset; still HALTED" in reset.stdout
    assert twice.exit_code == 0 and "not tripped: nothing changed" in twice.stdout


def test_cli_registers_the_block_types() -> None:
    from prefect.client.orchestration import get_client

    result = CliRunner().invoke(app, ["blocks", "register"])

    assert result.exit_code == 0, result.stderr
    assert (
        "registered: triplegain-database, triplegain-llm-provider, triplegain-exchange-keys" in result.stdout
    )
    with get_client(sync_client=True) as client:
        assert client.read_block_type_by_slug("triplegain-llm-provider").name == "TripleGain LLM Provider"
        assert client.read_block_type_by_slug("triplegain-exchange-keys").name == "TripleGain Exchange Keys"
