"""Indicators from the reference spec, computed with TA-Lib on closed candles.

TA-Lib is the de-facto reference implementation (Wilder smoothing for RSI, ATR and ADX; SMA-seeded EMAs).
VWAP, choppiness, volume ratio and the Bollinger-width rank are not in TA-Lib and are computed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import talib

from triplegain.models.analysis import Indicators
from triplegain.models.market import CandleSeries, FloatArray
from triplegain.settings import IndicatorSettings

_SMA = talib.MA_Type.SMA  # type: ignore[attr-defined]  # TA-Lib's stubs omit MA_Type


class TaSeries:
    """TA-Lib's outputs over one candle series, each function and parameters computed once: the
    indicators and the hourly evidence ask for the same RSI, MACD, Bollinger bands, EMAs and OBV of the
    same candles (the same call on the same input, so the same values)."""

    def __init__(self, candles: CandleSeries) -> None:
        self.candles = candles
        self._memo: dict[tuple[object, ...], Any] = {}

    def _once(self, key: tuple[object, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def ema(self, period: int) -> FloatArray:
        """talib.EMA of the closes."""
        return cast(FloatArray, self._once(("ema", period), lambda: talib.EMA(self.candles.close, period)))

    def rsi(self, period: int) -> FloatArray:
        """talib.RSI of the closes."""
        return cast(FloatArray, self._once(("rsi", period), lambda: talib.RSI(self.candles.close, period)))

    def macd(self, fast: int, slow: int, signal: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """talib.MACD of the closes: the line, its signal and the histogram."""
        return cast(
            tuple[FloatArray, FloatArray, FloatArray],
            self._once(
                ("macd", fast, slow, signal), lambda: talib.MACD(self.candles.close, fast, slow, signal)
            ),
        )

    def bbands(self, period: int, std: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """talib.BBANDS of the closes (simple moving average, `std` deviations either side)."""
        return cast(
            tuple[FloatArray, FloatArray, FloatArray],
            self._once(
                ("bbands", period, std), lambda: talib.BBANDS(self.candles.close, period, std, std, _SMA)
            ),
        )

    def obv(self) -> FloatArray:
        """talib.OBV of the closes and volumes."""
        return cast(
            FloatArray, self._once(("obv",), lambda: talib.OBV(self.candles.close, self.candles.volume))
        )


def compute_indicators(
    candles: CandleSeries, settings: IndicatorSettings, series: TaSeries | None = None
) -> Indicators:
    """Latest value of every indicator; None where the history is too short (never NaN). `series` shares
    TA-Lib's outputs on these candles with the evidence (`technical_step` passes one)."""
    ta = series if series is not None and series.candles is candles else TaSeries(candles)
    c, h, lo, v = candles.close, candles.high, candles.low, candles.volume
    macd, macd_signal, macd_hist = ta.macd(settings.macd_fast, settings.macd_slow, settings.macd_signal)
    atr = talib.ATR(h, lo, c, settings.atr_period)
    upper, middle, lower = ta.bbands(settings.bollinger_period, settings.bollinger_std)
    width = (upper - lower) / middle
    obv = ta.obv()
    return Indicators(
        price=float(c[-1]),
        rsi=_last(ta.rsi(settings.rsi_period)),
        macd=_last(macd),
        macd_signal=_last(macd_signal),
        macd_hist=_last(macd_hist),
        macd_hist_prev=_last(macd_hist[:-1]),
        ema={p: _last(ta.ema(p)) for p in settings.ema_periods},
        sma={p: _last(talib.SMA(c, p)) for p in settings.sma_periods},
        atr=_last(atr),
        atr_mean=_tail_mean(atr, settings.atr_mean_period),
        atr_baseline=_tail_mean(atr, settings.atr_baseline_period),
        adx=_last(talib.ADX(h, lo, c, settings.adx_period)),
        plus_di=_last(talib.PLUS_DI(h, lo, c, settings.adx_period)),
        minus_di=_last(talib.MINUS_DI(h, lo, c, settings.adx_period)),
        bb_upper=_last(upper),
        bb_middle=_last(middle),
        bb_lower=_last(lower),
        bb_width=_last(width),
        bb_width_rank=_rank_of_last(width, settings.bollinger_rank_window),
        obv=_last(obv),
        obv_slope=_last(obv[-1:] - obv[-1 - settings.volume_period : -settings.volume_period])
        if len(obv) > settings.volume_period
        else None,
        vwap=vwap(candles, settings.vwap_period),
        choppiness=choppiness(candles, settings.choppiness_period),
        volume_ratio=_ratio(float(v[-1]), _last(talib.SMA(v, settings.volume_period))),
        roc=_last(talib.ROC(c, settings.roc_period)),
    )


def vwap(candles: CandleSeries, period: int) -> float | None:
    """Volume-weighted average of the typical price over the last `period` candles."""
    if len(candles) < period:
        return None
    typical = (candles.high + candles.low + candles.close)[-period:] / 3
    volume = candles.volume[-period:]
    return _ratio(float(np.sum(typical * volume)), float(np.sum(volume)))


def choppiness(candles: CandleSeries, period: int) -> float | None:
    """Choppiness index: 100 * log10(sum of true ranges / (highest high - lowest low)) / log10(period)."""
    if len(candles) <= period:
        return None
    true_range = talib.TRANGE(candles.high, candles.low, candles.close)[-period:]
    span = float(np.max(candles.high[-period:]) - np.min(candles.low[-period:]))
    ratio = _ratio(float(np.sum(true_range)), span)
    if ratio is None:
        return None
    return min(100.0, max(0.0, 100 * math.log10(ratio) / math.log10(period)))


def _last(values: FloatArray) -> float | None:
    if values.size == 0 or not math.isfinite(values[-1]):
        return None
    return float(values[-1])


def _tail_mean(values: FloatArray, window: int) -> float | None:
    tail = values[-window:]
    if tail.size < window or not np.isfinite(tail).all():
        return None
    return float(np.mean(tail))


def _rank_of_last(values: FloatArray, window: int) -> float | None:
    tail = values[-window:]
    if tail.size < window or not np.isfinite(tail).all():
        return None
    return float(np.count_nonzero(tail <= tail[-1]) / tail.size)


def _ratio(numerator: float, denominator: float | None) -> float | None:
    if denominator is None or denominator == 0 or not math.isfinite(numerator):
        return None
    return numerator / denominator
