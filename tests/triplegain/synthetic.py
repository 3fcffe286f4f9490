"""Synthetic hourly candle series built for each market regime (seeded, deterministic).

Random walks can trend by chance; the seeds of the range and the squeeze are ones whose walk does not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from triplegain.models.enums import Regime
from triplegain.models.market import CandleSeries

START = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = 600


def series_from_closes(
    close: np.ndarray, spread: np.ndarray | float, volume: np.ndarray | float = 10.0
) -> CandleSeries:
    """Candles whose open is the previous close and whose high/low reach `spread` (a fraction) beyond."""
    n = close.size
    open_ = np.concatenate([[close[0]], close[:-1]])
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    spread = np.broadcast_to(spread, (n,))
    ts = int(START.timestamp()) + np.arange(n, dtype=np.int64) * 3600
    volume = np.broadcast_to(np.asarray(volume, dtype=float), (n,)).copy()
    return CandleSeries(ts, open_, top * (1 + spread), bottom * (1 - spread), close.copy(), volume)


def _walk(rng: np.random.Generator, n: int, drift: float, sigma: float, start: float = 100.0) -> np.ndarray:
    return start * np.exp(np.cumsum(drift + sigma * rng.standard_normal(n)))


def trend(sign: int) -> CandleSeries:
    rng = np.random.default_rng(1)
    return series_from_closes(_walk(rng, HOURS, sign * 0.003, 0.002), 0.001)


def volatile(sign: int) -> CandleSeries:
    rng = np.random.default_rng(2)
    calm = _walk(rng, HOURS - 30, sign * 0.0005, 0.003)
    wild = _walk(rng, 30, sign * 0.004, 0.02, start=float(calm[-1]))
    spread = np.concatenate([np.full(HOURS - 30, 0.001), np.full(30, 0.015)])
    return series_from_closes(np.concatenate([calm, wild]), spread)


def squeeze(seed: int = 5, quiet_hours: int = 40) -> CandleSeries:
    """A range, then ever quieter hours: the Bollinger bands narrow to their narrowest, no trend."""
    rng = np.random.default_rng(seed)
    normal = _bounded(rng, HOURS - quiet_hours, 0.006, 0.03)
    fade = 0.003 * 0.9 ** np.arange(quiet_hours)
    quiet = float(normal[-1]) * (1 + fade * rng.standard_normal(quiet_hours))
    spread = np.concatenate([np.full(HOURS - quiet_hours, 0.003), fade / 4])
    return series_from_closes(np.concatenate([normal, quiet]), spread)


def chop() -> CandleSeries:
    """Up one hour, down the next, by a slowly growing amount: much movement, no progress."""
    rng = np.random.default_rng(4)
    size = np.linspace(0.008, 0.012, HOURS)
    sign = np.where(np.arange(HOURS) % 2 == 0, 1, -1)
    return series_from_closes(100 * (1 + size * sign + 0.001 * rng.standard_normal(HOURS)), 0.002)


def _bounded(rng: np.random.Generator, n: int, sigma: float, band: float) -> np.ndarray:
    """A driftless walk reflected at +/- `band` around 100: it wanders, but never trends away."""
    x, out = 0.0, np.empty(n)
    for i, step in enumerate(sigma * rng.standard_normal(n)):
        x += step
        if abs(x) > band:
            x = np.sign(x) * 2 * band - x
        out[i] = 100 * (1 + x)
    return out


def range_bound(seed: int = 4) -> CandleSeries:
    """A driftless walk held within a band: no trend, no squeeze, ordinary chop."""
    rng = np.random.default_rng(seed)
    return series_from_closes(_bounded(rng, HOURS, 0.004, 0.03), 0.001)


BUILDERS: dict[Regime, Callable[[], CandleSeries]] = {
    Regime.TRENDING_BULL: lambda: trend(1),
    Regime.TRENDING_BEAR: lambda: trend(-1),
    Regime.VOLATILE_BULL: lambda: volatile(1),
    Regime.VOLATILE_BEAR: lambda: volatile(-1),
    Regime.BREAKOUT_POTENTIAL: squeeze,
    Regime.CHOPPY: chop,
    Regime.RANGING: range_bound,
}
