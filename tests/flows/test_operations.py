"""Operations across runs, end to end: degradation through the fake LLM server, breaker actions through
the market watch, crashed and failed runs reported by the next run, overlapping cycles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

import triplegain.coordinator
from flows.control import reset_breaker, resume, status
from flows.market_watch import market_watch
from flows.trading_cycle import trading_cycle
from tests.fakes.llm_server import TEST_KEY, FakeLLMServer, Step
from tests.flows.test_trading_cycle import BUYING_HOUR, count
from triplegain.errors import ConcurrentCycleError
from triplegain.models.enums import CoordinatorState, CycleStatus, DegradationLevel
from triplegain.storage import create_db_engine, unit_of_work
from triplegain.storage.runs import start_run
from triplegain.storage.tables import CoordinatorStateRow, CycleRow, OrderRow, PositionSnapshotRow

HOLD = {"action": "HOLD", "confidence": 0.6, "reasoning": "signals are mixed"}


def config(tmp_path: Path, **sections: object) -> str:
    path = tmp_path / "ops.yaml"
    path.write_text(yaml.safe_dump(sections))
    return str(path)


def test_llm_failures_push_degradation_up_and_successes_bring_it_down(
    project_db: str, tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.events

    emitted: list[str] = []
    real_emit = tasks.events.emit_event

    def recording_emit(event: str, **kwargs: object) -> object:
        emitted.append(event)
        return real_emit(event=event, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tasks.events, "emit_event", recording_emit)
    provider = {"kind": "openai", "model": "m", "base_url": f"{server.url}/v1", "api_key": TEST_KEY}
    cfg = config(
        tmp_path,
        llm={
            "providers": {"v1": provider},
            "decision_models": ["v1"],
            "retries": 0,
            "breaker": {"cooldown_seconds": 0},
        },
        degradation={"failures_per_level": 2},
    )
    server.default = Step(status=500)
    levels = []
    for hour in (16, 17, 18):  # two symbols: two failed calls (and two market-data successes) an hour
        report = trading_cycle(at=f"2024-06-30T{hour}:00Z", config_file=cfg)
        levels.append(report.degradation)
    assert levels == [DegradationLevel.REDUCED, DegradationLevel.LIMITED, DegradationLevel.EMERGENCY]
    assert any("sentiment skipped" in e for e in report.notes)
    assert any(e.startswith("degradation_increased: limited -> emergency") for e in report.notes)
    assert status(cfg).degradation is DegradationLevel.EMERGENCY

    calls_before = len(server.requests)
    emergency = trading_cycle(at="2024-06-30T20:00Z", config_file=cfg)  # the offline model buys BTC here
    assert len(server.requests) == calls_before  # no model is called
    verdict = emergency.outcome("BTC/USDT").verdict
    assert verdict is not None and verdict.rejections[0].code == "DEGRADED_EMERGENCY"
    assert emergency.outcome("BTC/USDT").execution is None

    server.default = server.answer(HOLD)
    recovering = trading_cycle(at="2024-06-30T21:00Z", config_file=cfg)
    assert recovering.degradation is DegradationLevel.LIMITED
    assert any(e.startswith("degradation_recovery: emergency -> limited") for e in recovering.notes)
    limited = trading_cycle(at="2024-06-30T22:00Z", config_file=cfg)
    assert len(server.requests) == calls_before + 2  # models are asked again, and answer
    assert limited.degradation is DegradationLevel.LIMITED and status(cfg).llm_failures == 4
    recovered = trading_cycle(at="2024-06-30T23:00Z", config_file=cfg)  # three successes a failure
    assert recovered.degradation is DegradationLevel.REDUCED
    degradation_events = [e for e in emitted if e.startswith("triplegain.degradation.")]
    assert (
        degradation_events
        == ["triplegain.degradation.increased"] * 3 + ["triplegain.degradation.recovery"] * 2
    )


def test_a_drawdown_trip_in_the_market_watch_closes_positions_and_halts_the_next_cycle(
    project_db: str, tmp_path: Path
) -> None:
    cfg = config(tmp_path, risk={"max_drawdown_pct": "0.02"})  # fees alone put the account 0.03% down
    bought = trading_cycle(at="2024-06-30T20:00Z", config_file=cfg)
    assert bought.portfolio.positions

    watched = market_watch(at="2024-06-30T20:05Z", config_file=cfg)

    assert watched.cycle_id == "watch-20240630T2005Z" and watched.portfolio.positions == []
    assert watched.outcome("BTC/USDT").exits[0].closed_positions[0].close_reason == "circuit_breaker"
    assert any("max_drawdown breaker tripped" in e for e in watched.notes)
    assert count(project_db, PositionSnapshotRow) == 1  # the cycle's; the watch found nothing left open
    state = trading_cycle(at="2024-06-30T21:00Z", config_file=cfg, return_state=True)  # type: ignore[call-arg]
    assert state.name == "Skipped"
    assert market_watch(at="2024-06-30T21:05Z", config_file=cfg).status.value == "completed"  # still watching

    assert "still HALTED" in reset_breaker("reviewed", actor="ana", config_file=cfg).message
    resume("reviewed", actor="ana", confirm=True, config_file=cfg)
    again = trading_cycle(at="2024-06-30T22:00Z", config_file=cfg)
    assert again.status.value == "completed"
    latest = status(cfg).last_runs
    assert latest["trading-cycle"].status == "completed" and latest["market-watch"].run_key.endswith("2105Z")


def test_an_exception_mid_cycle_leaves_nothing_and_the_next_run_reports_it(
    project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: coordinator crashed")

    with monkeypatch.context() as m:
        m.setattr(triplegain.coordinator, "coordinate", explode)
        with pytest.raises(RuntimeError, match="injected"):
            trading_cycle(at="2024-06-30T20:00Z")
    assert count(project_db, CycleRow) == 0 and count(project_db, OrderRow) == 0
    assert status().last_runs["trading-cycle"].status == "failed"
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as s:  # a run killed three hours ago without a word
        start_run(s, "market-watch", "watch-20240630T1700Z", datetime.now(UTC) - timedelta(hours=3))
    engine.dispose()

    report = trading_cycle(at="2024-06-30T20:00Z")  # the failed hour again: nothing was lost, it runs

    crashes = [e for e in report.notes if e.startswith("previous ")]
    assert len(crashes) == 2
    assert "cycle-20240630T2000Z" in crashes[0] and "RuntimeError: injected" in crashes[0]
    assert "watch-20240630T1700Z" in crashes[1] and "cut off mid-way" in crashes[1]
    assert report.outcome("BTC/USDT").execution is not None
    later = trading_cycle(at="2024-06-30T21:00Z")
    assert not any(e.startswith("previous ") for e in later.notes)  # reported once


def test_two_cycles_started_at_once_place_one_set_of_orders(project_db: str) -> None:
    results: list[object] = []

    def start() -> None:
        try:
            results.append(trading_cycle(at="2024-06-30T20:00Z"))
        except ConcurrentCycleError as e:  # the loser's commit is refused by the database
            results.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert len(results) == 2 and count(project_db, CycleRow) == 1
    assert count(project_db, OrderRow) == 1  # BTC bought once


def test_two_different_hours_at_once_never_trade_from_the_same_account(project_db: str) -> None:
    errors: list[BaseException] = []

    def start(at: str) -> None:
        try:
            trading_cycle(at=at)
        except ConcurrentCycleError as e:
            errors.append(e)

    threads = [
        threading.Thread(target=start, args=(at,)) for at in ("2024-06-30T19:00Z", "2024-06-30T20:00Z")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    # Whichever commits second was refused once and ran again on the account the first one left; if that
    # was the earlier hour, it found the account already in a later hour and changed nothing.
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as s:
        committed = s.scalars(select(CycleRow.id).order_by(CycleRow.id)).all()
        version = s.scalar(select(CoordinatorStateRow.version))
    engine.dispose()
    assert errors == [] and version == len(committed)
    assert committed in (["cycle-20240630T1900Z", "cycle-20240630T2000Z"], ["cycle-20240630T2000Z"])
    assert status().state is CoordinatorState.RUNNING


def test_a_run_for_an_hour_before_the_account_s_last_changes_nothing(project_db: str) -> None:
    trading_cycle(at=BUYING_HOUR)  # buys BTC at 2024-06-30 20:00
    orders = count(project_db, OrderRow)

    late_cycle = trading_cycle(at="2024-06-30T17:00Z", return_state=True)
    late_watch = market_watch(at="2024-06-30T18:10Z", return_state=True)
    same_hour_watch = market_watch(at="2024-06-30T20:25Z")

    for state in (late_cycle, late_watch):
        report = state.result()
        assert state.name == "Skipped" and report.status is CycleStatus.SKIPPED  # type: ignore[union-attr]
        assert "an account only moves forward" in report.notes[0]  # type: ignore[union-attr]
    assert same_hour_watch.status is not CycleStatus.SKIPPED  # the same hour's candle: it runs
    assert count(project_db, OrderRow) == orders and count(project_db, CycleRow) == 2  # the cycle, the watch


def test_a_run_killed_right_after_its_commit_is_not_reported_as_crashed(
    project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.tracking

    def killed(*args: object, **kwargs: object) -> None:  # the process dies before the separate end write
        return None

    monkeypatch.setattr(flows.tracking, "finish_run", killed)
    report = trading_cycle(at="2024-06-30T20:00Z")
    watched = market_watch(at="2024-06-30T20:05Z")

    engine = create_db_engine(project_db)
    with unit_of_work(engine) as s:
        from triplegain.storage.tables import FlowRunRow

        ended = {
            row.run_key: (row.status, row.finished_at is not None) for row in s.scalars(select(FlowRunRow))
        }
    engine.dispose()
    assert ended[report.cycle_id] == ("completed", True)  # written with the cycle's own commit
    assert ended[watched.cycle_id] == ("completed", True)
