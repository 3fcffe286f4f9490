from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.triplegain.factories import candles, indicators, snapshot
from tests.triplegain.synthetic import BUILDERS
from triplegain.agents.evidence import FAMILIES, TIMEFRAMES, Evidence, gather_evidence, resample
from triplegain.agents.technical import analyze_technicals
from triplegain.cycle import analyze_symbol
from triplegain.indicators import TaSeries, compute_indicators
from triplegain.market import ReplaySource
from triplegain.models.enums import Bias, Regime, TrendDirection
from triplegain.settings import IndicatorSettings, TechnicalSettings, load_settings

S, P = TechnicalSettings(), IndicatorSettings()


def test_a_rising_market_is_long_on_every_timeframe_with_the_evidence_behind_it() -> None:
    candles = BUILDERS[Regime.TRENDING_BULL]()
    snap = snapshot().model_copy(update={"candles": candles})

    report = analyze_technicals(snap, compute_indicators(candles, P), S, P)

    assert report.bias is Bias.LONG and report.confidence >= 8 / 12  # a steady rise does not widen bands
    assert report.timeframe_alignment == ["1h:bullish", "4h:bullish", "1d:bullish"]
    assert report.model_used == "indicator-evidence" and "votes long" in report.reasoning


def test_a_falling_market_is_short() -> None:
    candles = BUILDERS[Regime.TRENDING_BEAR]()
    snap = snapshot().model_copy(update={"candles": candles})

    report = analyze_technicals(snap, compute_indicators(candles, P), S, P)

    assert report.bias is Bias.SHORT and report.confidence >= 8 / 12 and report.trend_strength >= 0.5


def test_a_flat_market_shows_no_evidence() -> None:
    report = analyze_technicals(snapshot(), indicators(), S, P)

    assert report.bias is Bias.NEUTRAL and report.confidence == 0.0 and report.trend_strength == 0.0


votes = st.sampled_from([-1, 0, 1])


@given(st.lists(votes, min_size=12, max_size=12), st.integers(0, 11), st.sampled_from([1, -1]))
def test_more_agreeing_evidence_never_lowers_the_confidence(grid: list[int], i: int, side: int) -> None:
    def evidence(flat: list[int]) -> Evidence:
        it = iter(flat)
        return Evidence({tf: {f: next(it) for f in FAMILIES} for tf, _ in TIMEFRAMES})

    direction = Bias.LONG if side == 1 else Bias.SHORT
    before = evidence(grid)
    after = evidence([*grid[:i], side, *grid[i + 1 :]])

    assert after.confidence(direction) >= before.confidence(direction)
    assert after.strength() >= before.strength() or before.bias(S) is not direction
    if before.bias(S) is direction:
        assert after.bias(S) is direction


def test_confidence_and_strength_follow_the_market_hour_by_hour(replay: ReplaySource) -> None:
    settings = load_settings()
    start = datetime(2024, 6, 1, tzinfo=UTC)
    reports = [
        analyze_symbol(replay, "BTC/USDT", start + timedelta(hours=h), None, settings).technical
        for h in range(48)
    ]

    assert len({r.confidence for r in reports if r is not None}) >= 4
    assert len({r.trend_strength for r in reports if r is not None}) >= 4


def test_higher_timeframes_are_built_from_the_hourly_candles() -> None:
    hourly = candles(10)
    hourly.close[:] = np.arange(10.0)
    hourly.high[:] = np.arange(10.0) + 0.5
    hourly.low[:] = np.arange(10.0) - 0.5
    hourly.open[:] = np.arange(10.0) - 0.1

    four = resample(hourly, 4)  # the newest 8 hours; the 2 oldest do not make a bar

    assert len(four) == 2
    assert list(four.open) == [1.9, 5.9] and list(four.close) == [5.0, 9.0]
    assert list(four.high) == [5.5, 9.5] and list(four.low) == [1.5, 5.5]
    assert list(four.volume) == [40.0, 40.0] and four.timestamps[0] == hourly.timestamps[2]


def test_rsi_bands_and_macd_cross() -> None:
    report = analyze_technicals(snapshot(), indicators(rsi=25, macd_hist=0.5, macd_hist_prev=-0.2), S)

    assert report.rsi_signal == "oversold"
    assert report.macd_signal == "bullish_cross"


def test_trend_from_emas() -> None:
    ind = indicators(price=110.0, ema={9: 108.0, 21: 106.0, 50: 100.0, 200: 90.0})

    report = analyze_technicals(snapshot(price="110"), ind, S)

    assert report.trend_direction is TrendDirection.BULLISH
    assert "price above EMA200" in report.secondary_signals


def test_missing_indicators_give_a_warning() -> None:
    ind = indicators(rsi=None, macd_hist=None, adx=None)

    report = analyze_technicals(snapshot(), ind, S)

    assert report.bias is Bias.NEUTRAL
    assert any("not enough history for rsi, macd_hist, adx" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("price", "position"), [("99.2", "near_support"), ("100", "mid_range"), ("100.8", "near_resistance")]
)
def test_levels_come_from_the_window(price: str, position: str) -> None:
    snap = snapshot(price="100").model_copy(update={"current_price": Decimal(price)})

    report = analyze_technicals(snap, indicators(), TechnicalSettings(near_level_pct=0.5))

    assert report.support_levels == [99] and report.resistance_levels == [101]
    assert report.current_position == position


def test_shared_ta_lib_outputs_change_nothing(replay: ReplaySource) -> None:
    """The indicators and the hourly evidence share TA-Lib's outputs (`TaSeries`): the report is the one
    each computing its own would give, on every synthetic regime and on real hours of the bundled data."""
    series = replay.series("BTC/USDT")
    real = [series.slice(end - 1000, end) for end in range(1000, len(series), 97)]
    for window in [*(build() for build in BUILDERS.values()), *real]:
        snap = snapshot().model_copy(update={"candles": window})
        shared = TaSeries(window)
        alone = analyze_technicals(snap, compute_indicators(window, P), S, P)
        together = analyze_technicals(snap, compute_indicators(window, P, shared), S, P, shared)

        assert together == alone
        assert gather_evidence(window, P, S, shared) == gather_evidence(window, P, S)
        assert shared.rsi(P.rsi_period) is shared.rsi(P.rsi_period)  # computed once
