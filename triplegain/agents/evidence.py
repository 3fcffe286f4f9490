"""The offline technical evidence: four indicator families on three timeframes, each voting long, short or
nothing (reference spec 4.1's multi-timeframe analysis, without a model).

Timeframes are 1h, and 4h and 1d built from the hourly candles (consecutive groups counted back from the
newest candle, so the last bar is always complete). Families, each from its own kind of information:

- trend: the fast EMA and the price on the same side of the slow EMA;
- momentum: RSI past 50 by `momentum_band` with the MACD histogram of the same sign;
- volatility: the close on one side of the Bollinger middle band while the bands widen (a quiet market
  confirms nothing);
- volume: on-balance volume rising or falling over the volume window.

A family without enough history votes nothing. The confidence is the share of all twelve votes that agree
with the bias, so more agreeing evidence never lowers it; the strength is the net share (agreeing minus
opposing). The bias is long or short only when the net count reaches `min_net_votes`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from triplegain.indicators import TaSeries
from triplegain.models.enums import Bias
from triplegain.models.market import CandleSeries, FloatArray
from triplegain.settings import IndicatorSettings, TechnicalSettings

TIMEFRAMES: tuple[tuple[str, int], ...] = (("1h", 1), ("4h", 4), ("1d", 24))
FAMILIES = ("trend", "momentum", "volatility", "volume")


@dataclass(frozen=True)
class Evidence:
    """Every family's vote (+1 long, -1 short, 0 nothing) on every timeframe."""

    votes: dict[str, dict[str, int]]  # timeframe -> family -> vote

    @property
    def total(self) -> int:
        """How many votes there could be (families x timeframes)."""
        return len(TIMEFRAMES) * len(FAMILIES)

    def count(self, sign: int) -> int:
        """Votes of one sign."""
        return self._counts.get(sign, 0)

    @cached_property
    def _counts(self) -> dict[int, int]:
        return dict(Counter(v for by_family in self.votes.values() for v in by_family.values()))

    def bias(self, s: TechnicalSettings) -> Bias:
        """Long or short when the net count reaches `min_net_votes`, else neutral."""
        net = self.count(1) - self.count(-1)
        if net >= s.min_net_votes:
            return Bias.LONG
        if -net >= s.min_net_votes:
            return Bias.SHORT
        return Bias.NEUTRAL

    def confidence(self, bias: Bias) -> float:
        """The share of all possible votes that agree with `bias` (the larger side when neutral)."""
        agreeing = {Bias.LONG: self.count(1), Bias.SHORT: self.count(-1)}.get(
            bias, max(self.count(1), self.count(-1))
        )
        return round(agreeing / self.total, 4)

    def strength(self) -> float:
        """The net share of the votes, 0 (balanced) to 1 (all agree)."""
        return round(abs(self.count(1) - self.count(-1)) / self.total, 4)

    def alignment(self) -> list[str]:
        """Each timeframe's net direction, e.g. ['1h:bullish', '4h:bullish', '1d:neutral']."""
        out = []
        for name, _ in TIMEFRAMES:
            net = sum(self.votes.get(name, {}).values())
            out.append(f"{name}:{'bullish' if net > 0 else 'bearish' if net < 0 else 'neutral'}")
        return out

    def summary(self) -> str:
        """A compact account of the votes, e.g. '1h trend+ momentum+ volatility0 volume-'."""
        marks = {1: "+", -1: "-", 0: "0"}
        return "; ".join(
            f"{name} " + " ".join(f"{f}{marks[v]}" for f, v in self.votes.get(name, {}).items())
            for name, _ in TIMEFRAMES
        )


def resample(candles: CandleSeries, hours: int) -> CandleSeries:
    """Bars of `hours` hourly candles each, counted back from the newest (a leftover oldest group is
    dropped)."""
    if hours == 1:
        return candles
    n = len(candles) // hours
    if n == 0:
        return candles.slice(0, 0)
    c = candles.slice(len(candles) - n * hours, len(candles))

    def groups(values: FloatArray) -> np.ndarray:
        return values.reshape(n, hours)

    return CandleSeries(
        timestamps=c.timestamps[::hours].copy(),
        open=groups(c.open)[:, 0].copy(),
        high=groups(c.high).max(axis=1),
        low=groups(c.low).min(axis=1),
        close=groups(c.close)[:, -1].copy(),
        volume=groups(c.volume).sum(axis=1),
    )


def gather_evidence(
    candles: CandleSeries, ind: IndicatorSettings, s: TechnicalSettings, hourly: TaSeries | None = None
) -> Evidence:
    """The twelve votes for the hourly `candles`; `hourly` shares TA-Lib's outputs on them with the
    indicators."""
    votes = {}
    for name, hours in TIMEFRAMES:
        bars = resample(candles, hours)
        same = hourly is not None and hourly.candles is bars
        votes[name] = family_votes(hourly if same and hourly is not None else TaSeries(bars), ind, s)
    return Evidence(votes)


def family_votes(ta: TaSeries, ind: IndicatorSettings, s: TechnicalSettings) -> dict[str, int]:
    """Each family's vote on one timeframe's bars."""
    return {
        "trend": _trend(ta, s),
        "momentum": _momentum(ta, ind, s),
        "volatility": _volatility(ta, ind),
        "volume": _volume(ta, ind),
    }


def _trend(ta: TaSeries, s: TechnicalSettings) -> int:
    close = ta.candles.close
    if len(close) < s.trend_slow_ema:
        return 0
    fast = ta.ema(s.trend_fast_ema)[-1]
    slow = ta.ema(s.trend_slow_ema)[-1]
    price = close[-1]
    if fast > slow and price > slow:
        return 1
    if fast < slow and price < slow:
        return -1
    return 0


def _momentum(ta: TaSeries, ind: IndicatorSettings, s: TechnicalSettings) -> int:
    if len(ta.candles) < ind.macd_slow + ind.macd_signal:
        return 0
    rsi = ta.rsi(ind.rsi_period)[-1]
    hist = ta.macd(ind.macd_fast, ind.macd_slow, ind.macd_signal)[2][-1]
    if not (np.isfinite(rsi) and np.isfinite(hist)):
        return 0
    if rsi > 50 + s.momentum_band and hist > 0:
        return 1
    if rsi < 50 - s.momentum_band and hist < 0:
        return -1
    return 0


def _volatility(ta: TaSeries, ind: IndicatorSettings) -> int:
    close = ta.candles.close
    lookback = ind.bollinger_period // 4 or 1
    if len(close) < ind.bollinger_period + lookback:
        return 0
    upper, middle, lower = ta.bbands(ind.bollinger_period, ind.bollinger_std)
    width = upper - lower
    if (
        not (np.isfinite(width[-1]) and np.isfinite(width[-1 - lookback]))
        or width[-1] <= width[-1 - lookback]
    ):
        return 0
    return 1 if close[-1] > middle[-1] else -1 if close[-1] < middle[-1] else 0


def _volume(ta: TaSeries, ind: IndicatorSettings) -> int:
    c = ta.candles
    if len(c) <= ind.volume_period or not np.any(c.volume[-ind.volume_period :] > 0):
        return 0
    obv = ta.obv()
    change = obv[-1] - obv[-1 - ind.volume_period]
    return 1 if change > 0 else -1 if change < 0 else 0
