from decimal import Decimal

import pytest

from tests.triplegain.factories import indicators, snapshot
from triplegain.agents.technical import analyze_technicals
from triplegain.models.enums import Bias, TrendDirection
from triplegain.settings import TechnicalSettings

S = TechnicalSettings()


@pytest.mark.parametrize(
    ("rsi", "hist", "bias"),
    [
        (65, 1.0, Bias.LONG),
        (35, -1.0, Bias.SHORT),
        (65, -1.0, Bias.NEUTRAL),
        (35, 1.0, Bias.NEUTRAL),
        (50, 1, Bias.NEUTRAL),
    ],
)
def test_reference_heuristic_sets_bias(rsi: float, hist: float, bias: Bias) -> None:
    report = analyze_technicals(snapshot(), indicators(rsi=rsi, macd_hist=hist), S)

    assert report.bias is bias
    assert report.confidence == 0.25
    assert report.model_used == "indicator-heuristic"


def test_rsi_bands_and_macd_cross() -> None:
    report = analyze_technicals(snapshot(), indicators(rsi=25, macd_hist=0.5, macd_hist_prev=-0.2), S)

    assert report.rsi_signal == "oversold"
    assert report.macd_signal == "bullish_cross"


def test_trend_from_emas() -> None:
    ind = indicators(price=110.0, ema={9: 108.0, 21: 106.0, 50: 100.0, 200: 90.0})

    report = analyze_technicals(snapshot(price="110"), ind, S)

    assert report.trend_direction is TrendDirection.BULLISH
    assert "price above EMA200" in report.secondary_signals


def test_missing_indicators_give_neutral_zero_confidence_and_a_warning() -> None:
    ind = indicators(rsi=None, macd_hist=None, adx=None)

    report = analyze_technicals(snapshot(), ind, S)

    assert report.bias is Bias.NEUTRAL
    assert report.confidence == 0.0
    assert any("not enough history for rsi, macd_hist, adx" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("price", "position"), [("99.2", "near_support"), ("100", "mid_range"), ("100.8", "near_resistance")]
)
def test_levels_come_from_the_window(price: str, position: str) -> None:
    snap = snapshot(price="100").model_copy(update={"current_price": Decimal(price)})

    report = analyze_technicals(snap, indicators(), TechnicalSettings(near_level_pct=0.5))

    assert report.support_levels == [99] and report.resistance_levels == [101]
    assert report.current_position == position
