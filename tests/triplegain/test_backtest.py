"""Backtests: no look-ahead, reproducible, baselines against hand-computed cases, a breaker in a crash."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from triplegain.backtest import BacktestResult, LLMReplay, replay_setup, run_backtest
from triplegain.backtest_metrics import baselines, measure
from triplegain.errors import ConfigError
from triplegain.llm.models import ProviderConfig
from triplegain.market import ReplaySource
from triplegain.market.source import closed_until
from triplegain.settings import load_settings

SHARED_MARKET = Path(__file__).resolve().parents[3] / "shared" / "data" / "market"
START = datetime(2024, 6, 20, tzinfo=UTC)
END = datetime(2024, 6, 23, 23, tzinfo=UTC)


def truncated(source: ReplaySource, cut: datetime) -> ReplaySource:
    """The same data, but nothing that closed after `cut`: a world where the future does not exist yet."""
    short = ReplaySource()
    for symbol in ("BTC/USDT", "XRP/USDT"):
        series = source.series(symbol)
        short.add_series(symbol, closed_until(series, cut, len(series)))
    return short


def test_nothing_later_than_a_cycle_is_ever_read() -> None:
    settings = load_settings()
    full = ReplaySource()
    cut = datetime(2024, 6, 22, 5, tzinfo=UTC)

    with_future = run_backtest(full, START, END, settings)
    without = run_backtest(truncated(full, cut), START, cut, settings)

    hours = len(without.equity)
    assert with_future.times[:hours] == without.times and hours == 54
    assert with_future.equity[:hours] == without.equity  # the future changed nothing that came before it


def test_the_source_is_only_asked_for_candles_closed_by_the_cycle_time() -> None:
    hours_done = [0]
    asked: list[tuple[datetime, datetime, datetime | None]] = []  # (hour simulated, until, last close)

    class Recording(ReplaySource):
        def candles(self, symbol: str, until: datetime, limit: int):  # type: ignore[no-untyped-def]
            got = super().candles(symbol, until, limit)
            if hours_done[0] < 24:  # afterwards only the scoring of votes reads later prices
                last = got.open_time(-1) + timedelta(hours=1) if len(got) else None
                asked.append((START + timedelta(hours=hours_done[0]), until, last))
            return got

    def progress(done: int, total: int) -> None:
        hours_done[0] = done

    result = run_backtest(Recording(), START, START + timedelta(hours=23), load_settings(), progress=progress)

    assert result.hours == 24 and len({hour for hour, _, _ in asked}) == 24
    assert all(until <= hour for hour, until, _ in asked)
    assert all(last is None or last <= until for _, until, last in asked)


def test_two_runs_give_identical_results() -> None:
    settings = load_settings()

    first = run_backtest(ReplaySource(), START, END, settings)
    second = run_backtest(ReplaySource(), START, END, settings)

    assert first.model_dump() == second.model_dump()
    assert first.metrics.trades > 0  # the window trades, so identity says something


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ends \(.*\) before it starts"):
        run_backtest(ReplaySource(), END, START, load_settings())


def test_baselines_against_a_hand_computed_case() -> None:
    settings = load_settings(portfolio={"target_pct": {"BTC": 50, "XRP": 0, "USDT": 50}})
    closes = {"BTC/USDT": np.array([100.0, 200.0, np.nan]), "XRP/USDT": np.array([1.0, 1.0, 1.0])}

    runs = baselines(closes, settings, 1000.0)
    curves = {name: run.curve for name, run in runs.items()}

    # Buy 500 USD of BTC at 100 paying 0.26%: 4.987 BTC; it doubles; a missing close keeps the last one.
    hold = 500 + 500 * (1 - 0.0026) / 100 * 200
    assert curves["buy_and_hold"] == pytest.approx([1000 - 500 * 0.0026, hold, hold])
    # Drift-rebalanced: BTC is 66.6% > 50% + 5: sell back to half the value, paying the fee on what is sold.
    sold = (hold - 500) - hold / 2
    rebalanced = 500 + sold - sold * 0.0026 + hold / 2
    assert curves["drift_rebalanced"] == pytest.approx([1000 - 500 * 0.0026, rebalanced, rebalanced])
    # One buy each; the rebalanced one also sold once. Fees on every traded notional; exposure the mean share.
    hold_run, rebalanced_run = runs["buy_and_hold"], runs["drift_rebalanced"]
    assert (hold_run.trades, rebalanced_run.trades) == (1, 2)
    assert hold_run.fees == pytest.approx(500 * 0.0026)
    assert rebalanced_run.fees == pytest.approx(500 * 0.0026 + sold * 0.0026)
    btc_share = 500 * (1 - 0.0026) / 100 * 200 / hold
    assert hold_run.exposure_pct == pytest.approx(
        100 * (500 * (1 - 0.0026) / (1000 - 1.3) + 2 * btc_share) / 3
    )
    assert rebalanced_run.metrics().trades == 2 and rebalanced_run.metrics().fees_paid == rebalanced_run.fees


def test_metrics_against_a_hand_computed_curve() -> None:
    m = measure([100.0, 110.0, 99.0])

    assert m.total_return_pct == pytest.approx(-1.0)
    assert m.max_drawdown_pct == pytest.approx(10.0)
    assert m.sharpe == pytest.approx(0.0)
    assert m.sortino == pytest.approx(0.0)
    up = measure([100.0, 110.0, 121.0])
    assert up.sharpe == 0.0 and up.sortino == 0.0  # no variation, no downside: defined as 0
    mixed = measure([100.0, 110.0, 104.5, 114.95])
    r = np.array([0.10, -0.05, 0.10])
    assert mixed.sharpe == pytest.approx(r.mean() / r.std() * np.sqrt(8760))
    assert mixed.sortino == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(8760))


def worst_overshoot(result: BacktestResult, limit: float) -> float:
    """How far the drawdown from the running peak went past `limit` plus one hour's move (the account's
    worst hourly loss): <= 0 when the bound held."""
    equity = np.array(result.equity)
    peaks = np.maximum.accumulate(equity)
    drawdown = (peaks - equity) / peaks * 100
    worst_hour = float(np.max(np.maximum(0, -np.diff(equity) / equity[:-1] * 100)))
    return float(np.max(drawdown)) - limit - worst_hour


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
@pytest.mark.parametrize("profile", ["defaults", "trading"])
def test_the_drawdown_bound_holds_hour_by_hour_in_the_may_2022_crash(
    profile: str, request: pytest.FixtureRequest
) -> None:
    """LUNA/UST: BTC below 30k, XRP -40% in a week; the drift-rebalanced allocation lost 27% in May."""
    if profile == "defaults":
        request.getfixturevalue("default_decisions")
    settings = load_settings(market={"data_dir": str(SHARED_MARKET)})

    result = run_backtest(
        ReplaySource(SHARED_MARKET),
        datetime(2022, 5, 1, tzinfo=UTC),
        datetime(2022, 5, 31, tzinfo=UTC),
        settings,
    )

    assert result.baselines["drift_rebalanced"].max_drawdown_pct > 25
    assert worst_overshoot(result, float(settings.risk.max_drawdown_pct)) <= 0
    assert result.resume_after_halt == "never" and "never resumed" in result.after_halt


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
def test_at_the_breaker_positions_close_the_allocation_is_sold_and_the_halt_holds() -> None:
    settings = load_settings(
        market={"data_dir": str(SHARED_MARKET)}, risk={"max_drawdown_pct": 6, "derisk_from_pct": 5}
    )

    result = run_backtest(
        ReplaySource(SHARED_MARKET),
        datetime(2022, 5, 1, tzinfo=UTC),
        datetime(2022, 5, 20, tzinfo=UTC),
        settings,
    )

    trips = [e for e in result.notes if "max_drawdown breaker tripped" in e]
    assert trips and any("-> halted by circuit-breaker" in e for e in result.notes)
    tripped_at = datetime.strptime(trips[0][:16], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    after = [
        v for t, v in zip(result.times, result.equity, strict=True) if t > tripped_at + timedelta(hours=1)
    ]
    assert after and max(after) - min(after) < 1  # all in USDT: the equity no longer moves with the market
    assert worst_overshoot(result, 6.0) <= 0 and result.resumes == 0


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
def test_a_declared_resume_policy_resets_the_peak_and_trades_again() -> None:
    settings = load_settings(
        market={"data_dir": str(SHARED_MARKET)},
        risk={"max_drawdown_pct": 6, "derisk_from_pct": 5},
        backtest={"resume_after_halt": "48h"},
    )

    result = run_backtest(
        ReplaySource(SHARED_MARKET),
        datetime(2022, 5, 1, tzinfo=UTC),
        datetime(2022, 5, 20, tzinfo=UTC),
        settings,
    )

    assert (
        result.resume_after_halt == "48h" and result.resumes >= 1 and "resumed 48h later" in result.after_halt
    )
    assert any("resumed by the backtest policy after 48 h halted" in e for e in result.notes)
    assert result.metrics.exposure_pct > 0


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
def test_an_exchange_outage_does_not_value_holdings_at_zero() -> None:
    settings = load_settings(market={"data_dir": str(SHARED_MARKET)})

    result = run_backtest(  # 2020-12-21 14:00-17:00: four hours without candles (a Binance outage)
        ReplaySource(SHARED_MARKET),
        datetime(2020, 12, 15, tzinfo=UTC),
        datetime(2020, 12, 22, tzinfo=UTC),
        settings,
    )

    moves = np.diff(result.equity) / np.array(result.equity[:-1])
    assert (
        result.skipped_hours >= 2 and float(np.min(moves)) > -0.05
    )  # was -72%: the holdings counted as zero


@pytest.mark.parametrize("value", ["soon", "0h", "-5", "9000h"])
def test_a_resume_policy_that_is_neither_never_nor_hours_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"backtest.resume_after_halt='.*' is invalid: 'never' or a number"):
        load_settings(backtest={"resume_after_halt": value})


def test_a_backtest_with_winning_trades_accumulates_hodl_bags_and_reports_them(replay: ReplaySource) -> None:
    settings = load_settings()  # the suite's trading profile: the offline model trades

    result = run_backtest(
        replay, datetime(2024, 4, 15, tzinfo=UTC), datetime(2024, 6, 30, 23, tzinfo=UTC), settings
    )

    assert result.hodl_bags and result.hodl_value_usd > 0
    assert result.hodl_bags.get("USDT", 0) > 0  # its share is held as soon as it reaches 1 USD


def test_a_replayed_technical_model_without_recordings_leaves_the_offline_backtest_unchanged(
    replay: ReplaySource,
) -> None:
    settings = load_settings()
    qwen = ProviderConfig(name="qwen", kind="openai", model="qwen2.5:7b", base_url="http://127.0.0.1:9/v1")
    start, end = datetime(2024, 6, 20, tzinfo=UTC), datetime(2024, 6, 22, tzinfo=UTC)

    plain = run_backtest(replay, start, end, settings)
    replayed = run_backtest(
        replay, start, end, settings, replay=LLMReplay([], {}, [], technical=qwen, regime=qwen)
    )

    assert replayed.equity == plain.equity and replayed.replayed_answers == 0
    assert replayed.missing_answers == 2 * 2 * replayed.hours  # both agents, both symbols, every hour


def test_a_replay_loads_the_resolution_chains_recordings_too() -> None:
    """A conflict resolved live by a model that does not vote is resolved by its recorded answer in a
    backtest, not by the conservative fallback: the chain's models are among those whose recordings load."""
    settings = load_settings(
        llm={"decision_models": ["deepseek"], "resolution_chain": ["deepseek", "anthropic"]}
    )

    wanted = replay_setup(settings)

    assert wanted.recorded_models() == ["deepseek-chat", "claude-3-5-sonnet-20241022"]  # each model once
