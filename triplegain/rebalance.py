"""Portfolio rebalancing and DCA batching (reference spec 4.5 and 3.14, with their gaps closed).

The allocation counts only what rebalancing may move: hodl bags and the base asset held by open positions
are excluded. A rebalance happens when an asset drifts `drift_threshold_pct` from its target (at most once per
`min_interval_hours`, unless forced), towards the configured targets (the reference used equal thirds).
Trades are BTC/USDT-style spot trades against the quote currency, sells first so buys are funded.

Cost-aware: every trade's expected cost (fee plus worst slippage) is weighed against the drift beyond the
tolerance band that it removes, across both of its legs (the asset and the quote currency), trade by trade.
A trade that removes no drift beyond the band, or less than it costs, is skipped and the decision says why;
the remaining allocation is then within the band, or as close as paying for it is worth. A forced rebalance
counts all drift, so it trades to target.

DCA: a rebalance of `dca_threshold_usd` or more splits into `dca_batches` batches `dca_interval_hours` apart;
the reference's rules: fewer batches while any trade's share is under the minimum trade, each share rounded
down to the cent, the remainders in batch 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.models.enums import CoordinatorState, Side
from triplegain.models.trading import QUOTE, Position, split_symbol
from triplegain.settings import BrokerSettings, PortfolioSettings

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
DUE_TOLERANCE = timedelta(minutes=1)
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class AssetAllocation(BaseModel):
    """One asset's share of the rebalanceable equity."""

    model_config = _FROZEN

    asset: str
    amount: Decimal = Field(description="Held minus hodl bag minus what open positions hold")
    excluded: Decimal = Field(description="Hodl bag plus open positions' size, not rebalanced")
    price: Decimal
    value_usd: Decimal
    pct: Decimal
    target_pct: Decimal

    @property
    def drift_pct(self) -> Decimal:
        """Percentage points above (+) or below (-) the target."""
        return self.pct - self.target_pct


class Allocation(BaseModel):
    """The rebalanceable part of the account, per target asset."""

    model_config = _FROZEN

    equity_usd: Decimal
    assets: list[AssetAllocation]
    notes: list[str] = Field(default_factory=list)

    @property
    def max_drift_pct(self) -> Decimal:
        """The largest absolute drift from target, in percentage points."""
        return max((abs(a.drift_pct) for a in self.assets), default=Decimal(0))

    def asset(self, name: str) -> AssetAllocation:
        """One asset's line (KeyError when it has no target)."""
        for a in self.assets:
            if a.asset == name:
                return a
        raise KeyError(name)


class RebalanceTrade(BaseModel):
    """One spot trade against the quote currency, sized in USD."""

    model_config = _FROZEN

    symbol: str
    side: Side
    amount_usd: Decimal = Field(gt=0)
    cost_usd: Decimal = Field(Decimal(0), ge=0, description="Expected fee plus worst-case slippage")
    drift_removed_usd: Decimal = Field(Decimal(0), ge=0, description="Drift beyond the band it removes")


class RebalanceDecision(BaseModel):
    """Whether to rebalance, why, and with which trades (sells first)."""

    model_config = _FROZEN

    at: AwareDatetime
    allocation: Allocation
    action: Literal["none", "rebalance"]
    reason: str
    trades: list[RebalanceTrade] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="Trades left out, and why")
    forced: bool = False

    @property
    def total_usd(self) -> Decimal:
        """The value of every trade together."""
        return sum((t.amount_usd for t in self.trades), Decimal(0))


class Batch(BaseModel):
    """One DCA batch: its place in the plan, when it falls due, and its trades."""

    model_config = _FROZEN

    index: int = Field(ge=0)
    scheduled_at: AwareDatetime
    trades: list[RebalanceTrade]


def allocation(
    balances: dict[str, Decimal],
    prices: dict[str, Decimal],
    positions: Sequence[Position],
    s: PortfolioSettings,
) -> Allocation:
    """The rebalanceable allocation; ValueError when a target asset has no price."""
    held_by_positions: dict[str, Decimal] = {}
    for p in positions:
        base, _ = split_symbol(p.symbol)
        held_by_positions[base] = held_by_positions.get(base, Decimal(0)) + p.size
    lines, notes = [], []
    for asset, target in s.target_pct.items():
        price = Decimal(1) if asset == QUOTE else prices.get(f"{asset}/{QUOTE}")
        if price is None:
            raise ValueError(f"no price for {asset}/{QUOTE}: cannot value the allocation")
        excluded = s.hodl.get(asset, Decimal(0)) + held_by_positions.get(asset, Decimal(0))
        held = balances.get(asset, Decimal(0))
        if held < excluded:
            notes.append(
                f"{asset}: holding {held} but {excluded} is excluded (hodl bag, positions): counted as 0"
            )
        amount = max(held - excluded, Decimal(0))
        lines.append((asset, amount, excluded, price, amount * price, target))
    equity = sum((line[4] for line in lines), Decimal(0))
    assets = [
        AssetAllocation(
            asset=asset,
            amount=amount,
            excluded=excluded,
            price=price,
            value_usd=value,
            pct=value / equity * HUNDRED if equity > 0 else target,  # zero equity: no false drift
            target_pct=target,
        )
        for asset, amount, excluded, price, value, target in lines
    ]
    return Allocation(equity_usd=equity, assets=assets, notes=notes)


def decide(
    current: Allocation,
    s: PortfolioSettings,
    broker: BrokerSettings,
    at: datetime,
    last_rebalance_at: datetime | None = None,
    force: bool = False,
) -> RebalanceDecision:
    """The rebalance the allocation calls for, if any (see the module docstring for the rules)."""
    reason = _why_not_now(current, s, at, last_rebalance_at, force)
    if reason is None:
        trades, skipped = _trades(current, s, broker, force)
        reason = None if trades else "drift found, but no trade is worth making"
    else:
        trades, skipped = [], []
    if reason is not None:
        return RebalanceDecision(
            at=at, allocation=current, action="none", reason=reason, skipped=skipped, forced=force
        )
    why = (
        "forced"
        if force
        else f"max drift {current.max_drift_pct:.2f} points reaches the {s.drift_threshold_pct}% threshold"
    )
    return RebalanceDecision(
        at=at,
        allocation=current,
        action="rebalance",
        reason=why,
        trades=trades,
        skipped=skipped,
        forced=force,
    )


def plan_rebalance(
    coordinator: CoordinatorState,
    current: Allocation,
    s: PortfolioSettings,
    broker: BrokerSettings,
    at: datetime,
    last_rebalance_at: datetime | None = None,
    force: bool = False,
) -> RebalanceDecision:
    """What the portfolio check decides: `decide`, and no rebalance at all unless the coordinator RUNS."""
    decision = decide(current, s, broker, at, last_rebalance_at, force)
    if decision.action == "rebalance" and coordinator is not CoordinatorState.RUNNING:
        return decision.model_copy(
            update={"action": "none", "reason": f"coordinator is {coordinator}: no rebalance planned"}
        )
    return decision


def _why_not_now(
    current: Allocation, s: PortfolioSettings, at: datetime, last: datetime | None, force: bool
) -> str | None:
    """Why no rebalance is due now (no equity, too soon, too little drift); None when one may be."""
    if current.equity_usd <= 0:
        return "nothing to rebalance: no equity outside hodl bags and open positions"
    if not force and last is not None:
        allowed = last + timedelta(hours=s.min_interval_hours)
        if at < allowed:
            since = f"{last:%Y-%m-%d %H:%M}"
            return f"last rebalance at {since}; the next is allowed from {allowed:%Y-%m-%d %H:%M} UTC"
    drift = current.max_drift_pct
    if not force and drift < s.drift_threshold_pct:
        return f"max drift {drift:.2f} points is below the {s.drift_threshold_pct}% threshold"
    return None


def _trades(
    current: Allocation, s: PortfolioSettings, broker: BrokerSettings, force: bool
) -> tuple[list[RebalanceTrade], list[str]]:
    """The trades worth their cost, sells first and larger first, and those skipped with the reason."""
    band = Decimal(0) if force else s.drift_threshold_pct * current.equity_usd / HUNDRED
    deviation = {a.asset: a.value_usd - a.target_pct * current.equity_usd / HUNDRED for a in current.assets}
    cost_rate = (broker.fee_pct + broker.max_slippage_pct) / HUNDRED
    candidates = sorted(
        (a.asset for a in current.assets if a.asset != QUOTE),
        key=lambda asset: (deviation[asset] < 0, -abs(deviation[asset])),
    )
    trades: list[RebalanceTrade] = []
    skipped: list[str] = []
    for asset in candidates:
        trade = _trade(asset, deviation, band, cost_rate, s, skipped)
        if trade is not None:
            signed = trade.amount_usd if trade.side is Side.SELL else -trade.amount_usd
            deviation[asset] -= signed
            deviation[QUOTE] += signed
            trades.append(trade)
    return trades, skipped


def _trade(
    asset: str,
    deviation: dict[str, Decimal],
    band: Decimal,
    cost_rate: Decimal,
    s: PortfolioSettings,
    skipped: list[str],
) -> RebalanceTrade | None:
    """The trade that takes `asset` to its target, if worth its cost; else None (and why, in `skipped`)."""
    amount = abs(deviation[asset]).quantize(CENT, ROUND_DOWN)
    if amount == 0:
        return None
    side, symbol = Side.SELL if deviation[asset] > 0 else Side.BUY, f"{asset}/{QUOTE}"
    if amount < s.min_trade_usd:
        skipped.append(f"{side} {amount} USD of {symbol}: below the {s.min_trade_usd} USD minimum trade")
        return None
    signed = amount if side is Side.SELL else -amount
    before = _excess(deviation[asset], band) + _excess(deviation[QUOTE], band)
    after = _excess(deviation[asset] - signed, band) + _excess(deviation[QUOTE] + signed, band)
    removed, cost = before - after, (amount * cost_rate).quantize(CENT)
    if cost > removed:
        skipped.append(
            f"{side} {amount} USD of {symbol}: expected cost {cost} USD exceeds the drift beyond the "
            f"{s.drift_threshold_pct}% band it removes ({removed:.2f} USD)"
        )
        return None
    return RebalanceTrade(
        symbol=symbol, side=side, amount_usd=amount, cost_usd=cost, drift_removed_usd=removed.quantize(CENT)
    )


def dca_batches(trades: Sequence[RebalanceTrade], s: PortfolioSettings, at: datetime) -> list[Batch]:
    """One batch now, or `dca_batches` batches `dca_interval_hours` apart for a large rebalance."""
    total = sum((t.amount_usd for t in trades), Decimal(0))
    n = s.dca_batches if total >= s.dca_threshold_usd else 1
    while n > 1 and any(t.amount_usd / n < s.min_trade_usd for t in trades):
        n -= 1
    if n == 1:
        return [Batch(index=0, scheduled_at=at, trades=list(trades))]
    shares: list[list[RebalanceTrade]] = [[] for _ in range(n)]
    for t in trades:
        per = (t.amount_usd / n).quantize(CENT, ROUND_DOWN)
        first = t.amount_usd - per * (n - 1)
        for i in range(n):
            amount = first if i == 0 else per
            if amount >= s.min_trade_usd:
                shares[i].append(t.model_copy(update={"amount_usd": amount, "cost_usd": t.cost_usd / n}))
    step = timedelta(hours=s.dca_interval_hours)
    return [Batch(index=i, scheduled_at=at + i * step, trades=b) for i, b in enumerate(shares) if b]


def is_due(scheduled_at: datetime, now: datetime) -> bool:
    """Whether a batch scheduled at `scheduled_at` may run at `now`: a scheduler that starts a run a moment
    early (clock skew between server and worker) is within `DUE_TOLERANCE`."""
    return now + DUE_TOLERANCE >= scheduled_at


def why_batch_skipped(
    scheduled_at: datetime, state_then: CoordinatorState, state_now: CoordinatorState
) -> str | None:
    """Why a due batch must never execute: the coordinator was stopped when it fell due, or is stopped
    now (a batch skipped while paused is not made up later); None when it may execute."""
    stopped = next((st for st in (state_then, state_now) if st is not CoordinatorState.RUNNING), None)
    if stopped is None:
        return None
    return f"fell due at {scheduled_at:%Y-%m-%d %H:%M} UTC while the coordinator was {stopped}"


def _excess(deviation: Decimal, band: Decimal) -> Decimal:
    return max(abs(deviation) - band, Decimal(0))


BatchStatus = Literal["pending", "executed", "skipped", "cancelled"]


class BatchRecord(BaseModel):
    """A stored DCA batch and what became of it."""

    model_config = _FROZEN

    plan_id: str
    index: int
    scheduled_at: AwareDatetime
    trades: list[RebalanceTrade]
    status: BatchStatus
    note: str | None = None
    run_key: str | None = Field(None, description="The run that executed it")
    finished_at: AwareDatetime | None = None
    prefect_flow_run_id: str | None = None

    @property
    def run_id(self) -> str:
        """The identity of the run that executes this batch (its orders derive from it)."""
        return batch_run_id(self.plan_id, self.index)


def batch_run_id(plan_id: str, index: int) -> str:
    """The identity (and flow-run name) of the run that executes batch `index` of plan `plan_id`."""
    return f"dca-{plan_id}-b{index}"


class PlanRecord(BaseModel):
    """A stored rebalance plan with its batches."""

    model_config = _FROZEN

    id: str
    created_at: AwareDatetime
    status: Literal["active", "completed", "superseded"]
    reason: str
    total_usd: Decimal
    batches: list[BatchRecord]
