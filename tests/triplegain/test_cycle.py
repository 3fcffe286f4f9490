from datetime import UTC, datetime, timedelta

import pytest

from triplegain.cycle import cycle_id_for, normalize_at, run_cycle
from triplegain.cycle_types import fresh_account, next_account
from triplegain.market import ReplaySource
from triplegain.models.enums import CycleStatus
from triplegain.settings import load_settings


def drive(replay: ReplaySource, start: datetime, hours: int) -> list[object]:
    settings = load_settings()
    account = fresh_account(settings)
    reports = []
    for h in range(hours):
        report, result = run_cycle(replay, account, start + timedelta(hours=h), settings)
        account = next_account(account, result)
        reports.append(report)
    return reports


def test_two_runs_over_the_same_hours_are_identical(replay: ReplaySource) -> None:
    start = datetime(2024, 6, 20, tzinfo=UTC)

    first = drive(replay, start, 48)
    second = drive(replay, start, 48)

    strip = {"started_at", "finished_at"}
    assert [r.model_dump(exclude=strip) for r in first] == [r.model_dump(exclude=strip) for r in second]  # type: ignore[attr-defined]


def test_a_month_of_cycles_trades_and_keeps_books_balanced(replay: ReplaySource) -> None:
    reports = drive(replay, datetime(2024, 6, 1, tzinfo=UTC), 24 * 30)

    fills = [
        e.fill
        for r in reports
        for o in r.symbols
        for e in [*o.exits, *([o.execution] if o.execution else [])]
        if e.fill
    ]  # type: ignore[attr-defined]
    fees = sum(f.fee for f in fills)
    last = reports[-1].portfolio  # type: ignore[attr-defined]
    assert len(fills) >= 4
    assert all(r.status is CycleStatus.COMPLETED for r in reports)  # type: ignore[attr-defined]
    assert all(v >= 0 for v in last.balances.values())
    assert last.equity < 10_000 + 10_000 and fees > 0


def test_cycle_identity_is_its_hour() -> None:
    at = normalize_at(datetime(2024, 6, 1, 12, 34, 56, tzinfo=UTC))

    assert at == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert cycle_id_for(at) == "cycle-20240601T1200Z"


def test_naive_cycle_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        normalize_at(datetime(2024, 6, 1, 12))


def test_symbol_without_data_is_skipped_and_the_cycle_is_partial(tmp_path: object) -> None:
    settings = load_settings(market={"symbols": ["BTC/USDT", "XRP/USDT"], "data_dir": str(tmp_path)})
    source = ReplaySource(tmp_path)  # type: ignore[arg-type]
    source.add_series("BTC/USDT", ReplaySource().series("BTC/USDT"))

    report, _ = run_cycle(source, fresh_account(settings), datetime(2024, 6, 1, 12, tzinfo=UTC), settings)

    assert report.status is CycleStatus.PARTIAL
    assert (
        report.outcome("XRP/USDT").error is not None and "does not exist" in report.outcome("XRP/USDT").error
    )  # type: ignore[operator]
    assert report.outcome("BTC/USDT").signal is not None


def test_times_are_parsed_to_utc_and_refused_when_malformed_or_naive() -> None:
    from triplegain.cycle import parse_time

    assert parse_time("2024-06-01T14:00+02:00") == datetime(2024, 6, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"not ISO-8601; use e\.g\. 2024-06-01T12:00Z"):
        parse_time("yesterday")
    with pytest.raises(ValueError, match="no timezone"):
        parse_time("2024-06-01T12:00")


def test_run_cycle_resolves_conflicts_like_the_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    import triplegain.cycle
    from triplegain.cycle_types import fresh_account
    from triplegain.market import ReplaySource
    from triplegain.models.conflicts import Conflict, ConflictType, ResolutionAction
    from triplegain.settings import load_settings

    def choppy(analyses, positions, settings):  # type: ignore[no-untyped-def]
        return [
            Conflict(
                type=ConflictType.CHOPPY_REGIME,
                symbol="BTC/USDT",
                agents_involved=["regime_detection", "trading_decision"],
                description="BUY proposed in a choppy regime",
                fallback="abort",
            )
        ]

    settings = load_settings()
    at = datetime(2024, 6, 30, 20, tzinfo=UTC)  # the offline model buys BTC here
    free, _ = triplegain.cycle.run_cycle(ReplaySource(), fresh_account(settings), at, settings)
    assert free.outcome("BTC/USDT").execution is not None
    monkeypatch.setattr(triplegain.cycle, "find_conflicts", choppy)
    seen: list[object] = []

    def resolver(conflicts, signals):  # type: ignore[no-untyped-def]
        seen.append((conflicts, sorted(signals)))
        return triplegain.cycle.resolve_without_models(conflicts, signals)

    report, _ = triplegain.cycle.run_cycle(
        ReplaySource(), fresh_account(settings), at, settings, resolver=resolver
    )

    btc = report.outcome("BTC/USDT")
    assert len(seen) == 1 and btc.resolution is not None and btc.resolution.action is ResolutionAction.ABORT
    assert btc.execution is None  # the conservative answer to a choppy-regime conflict: no trade
