"""TA-Lib's values checked against independent loop implementations on the real bundled data."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.triplegain import reference_indicators as ref
from triplegain.indicators import choppiness, compute_indicators, vwap
from triplegain.market import ReplaySource
from triplegain.models.market import CandleSeries
from triplegain.settings import IndicatorSettings

TIMES = [
    datetime(2024, 5, 1, tzinfo=UTC),
    datetime(2024, 6, 1, 12, tzinfo=UTC),
    datetime(2024, 6, 30, 5, tzinfo=UTC),
]
S = IndicatorSettings()


def close_to(a: float | None, b: float, rel: float = 1e-7) -> bool:
    return a is not None and a == pytest.approx(b, rel=rel, abs=1e-9)


@pytest.fixture(
    params=[(s, t) for s in ("BTC/USDT", "XRP/USDT") for t in TIMES], ids=lambda p: f"{p[0]}@{p[1]:%m-%d}"
)
def window(request: pytest.FixtureRequest, replay: ReplaySource) -> CandleSeries:
    symbol, at = request.param
    return replay.candles(symbol, at, 300)


def test_rsi_macd_ema_sma_match_reference(window: CandleSeries) -> None:
    c = window.close.tolist()

    ind = compute_indicators(window, S)

    assert close_to(ind.rsi, ref.rsi(c, 14))
    line, signal, hist = ref.macd(c, 12, 26, 9)
    assert close_to(ind.macd, line, rel=1e-6)
    assert close_to(ind.macd_signal, signal, rel=1e-6)
    assert close_to(ind.macd_hist, hist, rel=1e-5)
    for period in (9, 21, 50, 200):
        assert close_to(ind.ema[period], ref.ema(c, period))
    for period in (20, 50, 200):
        assert close_to(ind.sma[period], ref.sma(c, period))


def test_atr_adx_bollinger_obv_match_reference(window: CandleSeries) -> None:
    h, lo, c, v = (a.tolist() for a in (window.high, window.low, window.close, window.volume))

    ind = compute_indicators(window, S)

    assert close_to(ind.atr, ref.atr(h, lo, c, 14))
    adx, plus_di, minus_di = ref.adx(h, lo, c, 14)
    assert close_to(ind.adx, adx, rel=1e-6)
    assert close_to(ind.plus_di, plus_di, rel=1e-6)
    assert close_to(ind.minus_di, minus_di, rel=1e-6)
    upper, mid, lower = ref.bollinger(c, 20, 2.0)
    assert close_to(ind.bb_upper, upper) and close_to(ind.bb_middle, mid) and close_to(ind.bb_lower, lower)
    obv = ref.obv(c, v)
    assert close_to(ind.obv, obv[-1], rel=1e-9)
    assert close_to(ind.obv_slope, obv[-1] - obv[-21], rel=1e-6)


def test_vwap_choppiness_volume_ratio_match_reference(window: CandleSeries) -> None:
    h, lo, c, v = (a.tolist() for a in (window.high, window.low, window.close, window.volume))

    ind = compute_indicators(window, S)

    assert close_to(ind.vwap, ref.vwap(h, lo, c, v, 24))
    assert close_to(ind.choppiness, ref.choppiness(h, lo, c, 14))
    assert close_to(ind.volume_ratio, v[-1] / ref.sma(v, 20))


def test_short_history_gives_none_never_nan(replay: ReplaySource) -> None:
    window = replay.candles("BTC/USDT", datetime(2024, 4, 1, tzinfo=UTC) + timedelta(hours=30), 300)

    ind = compute_indicators(window, S)

    assert ind.ema[200] is None and ind.sma[50] is None and ind.macd is None
    assert ind.rsi is not None
    for value in ind.model_dump().values():
        assert not (isinstance(value, float) and np.isnan(value))


def test_zero_volume_window_gives_none_for_volume_ratios() -> None:
    n = 40
    flat = np.full(n, 100.0)
    series = CandleSeries(np.arange(n, dtype=np.int64) * 3600, flat, flat, flat, flat, np.zeros(n))

    ind = compute_indicators(series, S)

    assert ind.vwap is None
    assert ind.volume_ratio is None
    assert ind.choppiness is None  # no range at all
    assert vwap(series, 24) is None and choppiness(series, 14) is None
