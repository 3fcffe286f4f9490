"""The exposure ceiling: how much of each target asset the allocation may hold now (the drawdown limit).

`risk.max_drawdown_pct` bounds the drawdown of the whole account, the rebalanced allocation included. Two
rules set each crypto asset's ceiling, as a percent of the rebalanceable equity (the rest is quote currency):

- volatility: target x min(1, `portfolio.target_volatility_pct` / the asset's annualised volatility over
  `portfolio.volatility_hours`), so a calm asset is held at its target and a wild one less;
- drawdown: x 1 while the account is less than `risk.derisk_from_pct` (half the limit unless set) below
  its peak, then linearly less, to 0 at `risk.max_drawdown_pct`; 0 while the max-drawdown breaker is
  tripped.

Every cycle sells what an asset holds above its ceiling once the excess reaches the drift threshold times
the drawdown scale (at once: not in DCA batches, not subject to the rebalance interval), so near the bound
any excess, and everything when the ceiling is 0. The rebalance aims at the ceilings, never above them.
Because the crypto held shrinks to nothing as the drawdown nears the bound, one hour's move can overshoot
it only by that hour's move times what is left.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import QUOTE, split_symbol
from triplegain.risk.state import CircuitBreaker, RiskState, drawdown_scale
from triplegain.settings import PortfolioSettings, RiskSettings

HUNDRED = Decimal(100)
HOURS_PER_YEAR = 24 * 365


def realised_volatility_pct(closes: np.ndarray, hours: int) -> float | None:
    """Annualised volatility of the last `hours` hourly log returns, in percent; None with too few closes
    (fewer than half the window) or a non-positive close."""
    tail = np.asarray(closes[-(hours + 1) :], dtype=float)
    if tail.size < hours // 2 + 1 or not np.all(tail > 0):
        return None
    returns = np.diff(np.log(tail))
    return float(np.std(returns) * math.sqrt(HOURS_PER_YEAR) * 100)


def volatility_scale(volatility_pct: float | None, s: PortfolioSettings) -> Decimal:
    """min(1, target / volatility); 1 when no target is set or the volatility is unknown."""
    if s.target_volatility_pct is None or volatility_pct is None or volatility_pct <= 0:
        return Decimal(1)
    return min(Decimal(1), s.target_volatility_pct / Decimal(repr(round(volatility_pct, 6))))


@dataclass(frozen=True)
class Ceilings:
    """Each target asset's ceiling in percent of the rebalanceable equity, and why."""

    pct: dict[str, Decimal]
    drawdown_pct: Decimal
    drawdown_scale: Decimal
    volatility_pct: dict[str, float | None]

    def targets(self, s: PortfolioSettings) -> dict[str, Decimal]:
        """The targets the rebalance aims at: each crypto asset at most its ceiling, the rest quote."""
        capped = {a: min(t, self.pct.get(a, t)) for a, t in s.target_pct.items() if a != QUOTE}
        return {**capped, QUOTE: HUNDRED - sum(capped.values(), Decimal(0))}

    def explain(self, asset: str) -> str:
        """One line: the ceiling and what set it."""
        vol = self.volatility_pct.get(asset)
        vol_text = f"volatility {vol:.0f}%" if vol is not None else "volatility unknown"
        return (
            f"{asset} ceiling {self.pct.get(asset, HUNDRED):.2f}% ({vol_text}, drawdown "
            f"{self.drawdown_pct:.2f}%: x{self.drawdown_scale:.2f})"
        )


def closes_by_asset(snapshots: Iterable[MarketSnapshot]) -> dict[str, np.ndarray]:
    """Each quote-currency pair's hourly closes, by its base asset ("BTC/USDT" -> "BTC")."""
    pairs = ((split_symbol(s.symbol), s.candles.close) for s in snapshots)
    return {base: closes for (base, quote), closes in pairs if quote == QUOTE}


def ceilings(
    closes: Mapping[str, np.ndarray],
    risk: RiskState | None,
    equity: Decimal,
    portfolio: PortfolioSettings,
    limits: RiskSettings,
) -> Ceilings:
    """The ceilings now: `closes` are each asset's recent hourly closes (by asset, e.g. "BTC"); an asset
    without closes is not limited by volatility. `equity` is the whole account's, marked now."""
    drawdown = risk.drawdown_pct(equity) if risk is not None else Decimal(0)
    tripped = risk is not None and CircuitBreaker.MAX_DRAWDOWN in risk.tripped
    dd_scale = drawdown_scale(drawdown, tripped, limits)
    pct: dict[str, Decimal] = {}
    vols: dict[str, float | None] = {}
    for asset, target in portfolio.target_pct.items():
        if asset == QUOTE:
            continue
        series = closes.get(asset)
        vols[asset] = (
            realised_volatility_pct(series, portfolio.volatility_hours) if series is not None else None
        )
        pct[asset] = target * volatility_scale(vols[asset], portfolio) * dd_scale
    return Ceilings(pct=pct, drawdown_pct=drawdown, drawdown_scale=dd_scale, volatility_pct=vols)


def capped_portfolio(portfolio: PortfolioSettings, limits: Ceilings | None) -> PortfolioSettings:
    """The portfolio settings with the ceilings as targets (what the rebalance aims at); unchanged without."""
    if limits is None:
        return portfolio
    return portfolio.model_copy(update={"target_pct": limits.targets(portfolio)})
