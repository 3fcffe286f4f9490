"""How a backtest is measured: return, drawdown, Sharpe and Sortino of an hourly equity curve, and two
baselines on the same prices (the target allocation bought and held, and the same rebalanced on drift)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from triplegain.market.source import MarketDataSource
from triplegain.models.trading import QUOTE
from triplegain.settings import Settings

HOURS_PER_YEAR = 24 * 365
_DUST_USD = 1e-6  # a rebalance leg smaller than this traded nothing
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Metrics(BaseModel):
    """Performance of one equity curve of hourly marks."""

    model_config = _FROZEN

    start_equity: float
    end_equity: float
    total_return_pct: float
    annualised_return_pct: float
    max_drawdown_pct: float
    sharpe: float = Field(description="Mean hourly return over its deviation, annualised (risk-free rate 0)")
    sortino: float = Field(description="Mean hourly return over its downside deviation, annualised")
    trades: int = 0
    fees_paid: float = 0.0
    exposure_pct: float = Field(0.0, description="Mean share of equity held in assets other than USDT")


def measure(equity: Sequence[float]) -> Metrics:
    """Return, drawdown, Sharpe and Sortino of an hourly equity curve."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0 or values[0] <= 0:
        raise ValueError("an equity curve needs at least one positive value")
    total = values[-1] / values[0] - 1
    years = max(values.size - 1, 1) / HOURS_PER_YEAR
    # Compounded to a year; capped so a few hours' return cannot overflow (it means little there anyway).
    annualised = math.expm1(min(math.log(values[-1] / values[0]) / years, 50.0)) if values[-1] > 0 else -1.0
    peaks = np.maximum.accumulate(values)
    drawdown = float(np.max((peaks - values) / peaks)) if values.size else 0.0
    returns = np.diff(values) / values[:-1] if values.size > 1 else np.zeros(1)
    scale = math.sqrt(HOURS_PER_YEAR)
    std = float(np.std(returns))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0) ** 2)))
    mean = float(np.mean(returns))
    return Metrics(
        start_equity=float(values[0]),
        end_equity=float(values[-1]),
        total_return_pct=float(total * 100),
        annualised_return_pct=float(annualised * 100),
        max_drawdown_pct=drawdown * 100,
        sharpe=mean / std * scale if std > 0 else 0.0,
        sortino=mean / downside * scale if downside > 0 else 0.0,
    )


def hourly_closes(source: MarketDataSource, symbol: str, times: Sequence[datetime]) -> np.ndarray:
    """The close of the newest candle closed by each time (the price a cycle at that time sees); NaN before
    the first."""
    closes = np.full(len(times), np.nan)
    for i, at in enumerate(times):
        candles = source.candles(symbol, at, 1)
        if len(candles):
            closes[i] = float(candles.close[-1])
    return closes


def close_at(source: MarketDataSource, symbol: str, at: datetime) -> float | None:
    """The close of the candle that closed exactly at `at`, if any (read for scoring, after the run)."""
    candles = source.candles(symbol, at, 1)
    if not len(candles) or candles.open_time(-1) + timedelta(hours=1) != at:
        return None
    return float(candles.close[-1])


@dataclass(frozen=True)
class Baseline:
    """A baseline's hourly equity curve, its trades (each asset bought or sold at an hour is one), the
    fees it paid and its mean share of equity in assets other than USDT, in percent."""

    curve: list[float]
    trades: int
    fees: float
    exposure_pct: float

    def metrics(self) -> Metrics:
        """The curve's metrics with the trades, fees and exposure filled in."""
        return measure(self.curve).model_copy(
            update={"trades": self.trades, "fees_paid": self.fees, "exposure_pct": self.exposure_pct}
        )


def baselines(closes: dict[str, np.ndarray], settings: Settings, initial: float) -> dict[str, Baseline]:
    """Buy-and-hold of the target allocation, and the same rebalanced when it drifts past the threshold.

    Both buy at the first hour's closes and pay the broker's fee on every traded notional; assets without a
    close at an hour keep their last one.
    """
    targets = {a: float(p) / 100 for a, p in settings.portfolio.target_pct.items()}
    fee = float(settings.broker.fee_pct) / 100
    threshold = float(settings.portfolio.drift_threshold_pct) / 100
    assets = [a for a in targets if a != QUOTE and f"{a}/{QUOTE}" in closes]
    prices = {a: _filled(closes[f"{a}/{QUOTE}"]) for a in assets}
    n = len(next(iter(prices.values()))) if prices else 0
    runs = {}
    for name, rebalance in (("buy_and_hold", False), ("drift_rebalanced", True)):
        cash = initial * targets.get(QUOTE, 0.0) + initial * sum(
            targets[a] for a in assets if a not in prices
        )
        units, trades, fees = {}, 0, 0.0
        for a in assets:
            spend = initial * targets[a]
            units[a] = spend * (1 - fee) / prices[a][0]
            trades += int(spend > 0)
            fees += spend * fee
        curve, exposure = [], []
        for i in range(n):
            value = cash + sum(units[a] * prices[a][i] for a in assets)
            if rebalance and value > 0:
                drift = max(
                    [abs(units[a] * prices[a][i] / value - targets[a]) for a in assets]
                    + [abs(cash / value - targets.get(QUOTE, 0.0))]
                )
                if drift >= threshold:
                    for a in assets:
                        wanted = value * targets[a]
                        held = units[a] * prices[a][i]
                        traded = abs(wanted - held)
                        cash -= (wanted - held) + traded * fee
                        units[a] = wanted / prices[a][i]
                        trades += int(traded > _DUST_USD)
                        fees += float(traded * fee)
                    value = cash + sum(units[a] * prices[a][i] for a in assets)
            curve.append(value)
            exposure.append(sum(units[a] * prices[a][i] for a in assets) / value if value > 0 else 0.0)
        mean_exposure = float(np.mean(exposure)) * 100 if exposure else 0.0
        runs[name] = Baseline(curve=curve, trades=trades, fees=fees, exposure_pct=mean_exposure)
    return runs


def _filled(values: np.ndarray) -> np.ndarray:
    """Carry the last known close forward (and the first one backward) over missing hours."""
    out = values.copy()
    if np.all(np.isnan(out)):
        raise ValueError("no close at all for a baseline asset in the backtest window")
    first = int(np.flatnonzero(~np.isnan(out))[0])
    out[:first] = out[first]
    for i in range(1, out.size):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out
