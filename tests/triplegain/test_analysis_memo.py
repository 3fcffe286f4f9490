"""Analyses kept across backtests: the same results to the bit, reused only where the inputs are the same."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from triplegain.agents import registry
from triplegain.agents.registry import AnalysisAgent
from triplegain.analysis_memo import ANALYSIS_SECTIONS, MARKET_SECTIONS, AnalysisMemo
from triplegain.backtest import BacktestResult, run_backtest
from triplegain.cycle import analyze_symbol, read_market
from triplegain.errors import MarketDataError
from triplegain.market import ReplaySource
from triplegain.models.analysis import AgentReport, RegimeAssessment, TechnicalReport
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings, load_settings

START = datetime(2024, 6, 20, tzinfo=UTC)
END = datetime(2024, 6, 22, 23, tzinfo=UTC)
SYMBOL_HOURS = 2 * 72


def same(a: BacktestResult, b: BacktestResult) -> bool:
    return a.model_dump() == b.model_dump()


def memo_counts(source: ReplaySource, settings: Settings) -> tuple[int, int]:
    memo = AnalysisMemo(source, settings)
    return memo.hits, memo.misses


def test_a_backtest_reusing_analyses_is_the_same_backtest() -> None:
    source = ReplaySource()
    first = load_settings()
    elsewhere = load_settings(portfolio={"drift_threshold_pct": 7.5}, risk={"derisk_from_pct": 6})

    warm = run_backtest(source, START, END, first, reuse_analyses=True)
    again = run_backtest(source, START, END, first, reuse_analyses=True)
    other = run_backtest(source, START, END, elsewhere, reuse_analyses=True)

    assert same(warm, run_backtest(ReplaySource(), START, END, first))
    assert same(again, warm) and warm.metrics.trades > 0
    assert same(other, run_backtest(ReplaySource(), START, END, elsewhere))
    # first: every read and analysis computed; again: all found; other: the reads found, the analyses new
    # (the offline vote reads risk settings)
    assert memo_counts(source, first) == (2 * SYMBOL_HOURS, 3 * SYMBOL_HOURS)


def test_settings_the_analysis_never_reads_reuse_whole_analyses() -> None:
    source = ReplaySource()
    run_backtest(source, START, END, load_settings(), reuse_analyses=True)

    moved = load_settings(portfolio={"drift_threshold_pct": 7.5}, hodl={"allocation_pct": 20})
    result = run_backtest(source, START, END, moved, reuse_analyses=True)

    assert memo_counts(source, moved) == (SYMBOL_HOURS, 2 * SYMBOL_HOURS)
    assert same(result, run_backtest(ReplaySource(), START, END, moved))


def test_a_changed_indicator_setting_computes_everything_afresh() -> None:
    source = ReplaySource()
    run_backtest(source, START, END, load_settings(), reuse_analyses=True)

    moved = load_settings(indicators={"rsi_period": 10})
    result = run_backtest(source, START, END, moved, reuse_analyses=True)

    assert memo_counts(source, moved) == (0, 4 * SYMBOL_HOURS)
    assert same(result, run_backtest(ReplaySource(), START, END, moved))


def test_backtests_in_threads_share_the_kept_analyses_safely() -> None:
    source = ReplaySource()
    variants = [
        load_settings(portfolio={"drift_threshold_pct": p}, backtest={"memo_hours": 50})
        for p in (5, 10, 15, 20)
    ]

    with ThreadPoolExecutor(max_workers=4) as pool:  # a small bound: lookups, insertions and evictions race
        shared = list(
            pool.map(lambda s: run_backtest(source, START, END, s, reuse_analyses=True), variants * 2)
        )

    plain = [run_backtest(ReplaySource(), START, END, s) for s in variants]
    assert all(same(got, want) for got, want in zip(shared, plain * 2, strict=True))
    memo = AnalysisMemo(source, variants[0])
    assert memo.hits + memo.misses >= 8 * SYMBOL_HOURS and memo.sizes == (50, 100)


class ReadsRecorded:
    """Settings that note which of their sections are read, passed wherever the settings go."""

    def __init__(self, settings: Settings) -> None:
        self._settings, self.read = settings, set[str]()

    def __getattr__(self, name: str) -> Any:
        self.read.add(name)
        return getattr(self._settings, name)


def test_the_analysis_reads_no_section_outside_its_key() -> None:
    source, settings = ReplaySource(), load_settings()
    reads, analyses = ReadsRecorded(settings), ReadsRecorded(settings)
    first = source.series("BTC/USDT").open_time(0)
    hours = [first + timedelta(hours=h) for h in (1, 30, 200)]
    hours += [START + timedelta(hours=h) for h in range(48)]

    previous = None
    for at in hours:  # too little history at first (a data problem), then every kind of hour
        for symbol in settings.market.symbols:
            with suppress(MarketDataError):  # too few closed candles in the first hours
                read_market(source, symbol, at, reads)  # type: ignore[arg-type]
            analysis = analyze_symbol(source, symbol, at, previous, analyses)  # type: ignore[arg-type]
            previous = analysis.regime.state if analysis.regime else previous

    assert reads.read <= set(MARKET_SECTIONS)
    assert analyses.read <= set(ANALYSIS_SECTIONS) and "decision" in analyses.read


def frames(error: BaseException) -> list[str]:
    names, tb = [], error.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def test_a_data_problem_is_kept_and_reported_again() -> None:
    source, settings = ReplaySource(), load_settings()
    early = source.series("BTC/USDT").open_time(0) + timedelta(hours=3)
    memo = AnalysisMemo(source, settings)

    raised = []
    for _ in range(3):
        with pytest.raises(MarketDataError, match="only 3 closed candles") as caught:
            memo.reader(source, "BTC/USDT", early, settings)
        raised.append(frames(caught.value))

    assert memo.misses == 1 and memo.hits == 2
    # raised from the reader each time: its traceback does not grow with every backtest that meets it
    assert raised[0] == raised[1] == raised[2] and raised[0][-1] == "reader"


def test_the_kept_entries_are_bounded() -> None:
    source, settings = ReplaySource(), load_settings(backtest={"memo_hours": 10})

    result = run_backtest(source, START, END, settings, reuse_analyses=True)

    memo = AnalysisMemo(source, settings)
    assert memo.misses == 2 * SYMBOL_HOURS and memo.sizes == (10, 20)
    assert same(result, run_backtest(ReplaySource(), START, END, settings))


def test_analyses_of_many_configurations_never_push_out_the_market_reads() -> None:
    source, bound = ReplaySource(), {"memo_hours": SYMBOL_HOURS}

    for pct in (6, 8, 12):  # the offline vote reads risk settings: each is a new analysis configuration
        settings = load_settings(risk={"derisk_from_pct": pct}, backtest=bound)
        run_backtest(source, START, END, settings, reuse_analyses=True)

    memo = AnalysisMemo(source, settings)
    assert memo.hits == 2 * SYMBOL_HOURS  # the second and third found every market read
    assert memo.sizes == (SYMBOL_HOURS, 2 * SYMBOL_HOURS)  # the first configuration's analyses dropped


def test_a_memo_refuses_another_source_or_other_settings() -> None:
    source, settings = ReplaySource(), load_settings()
    memo = AnalysisMemo(source, settings)

    with pytest.raises(ValueError, match="another source or other settings"):
        memo.reader(ReplaySource(), "BTC/USDT", START, settings)
    with pytest.raises(ValueError, match="another source or other settings"):
        memo.reader(source, "BTC/USDT", START, load_settings())


class Drift(AgentReport):
    """A report that depends on a setting outside the analysis sections."""

    threshold: float


def drift_agent(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> AgentReport:
    return Drift(
        agent_name="drift",
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        confidence=0.5,
        model_used="offline",
        threshold=float(settings.portfolio.drift_threshold_pct),
    )


def test_with_an_agent_registered_any_setting_keys_the_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "ANALYSIS_AGENTS", (AnalysisAgent("drift", drift_agent),))
    source = ReplaySource()
    run_backtest(source, START, START + timedelta(hours=2), load_settings(), reuse_analyses=True)
    moved = load_settings(portfolio={"drift_threshold_pct": 7.5})

    run_backtest(source, START, START + timedelta(hours=2), moved, reuse_analyses=True)

    hits, misses = memo_counts(source, moved)
    assert (hits, misses) == (6, 18)  # the reads found, the analyses (the agent reads portfolio) computed
