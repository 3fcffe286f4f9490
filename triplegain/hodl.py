"""Hodl bags (reference spec 4.5, `HodlBagManager`): a share of every winning trade's profit, kept for good.

A position closed with a realized profit of at least `hodl.min_profit_usd` puts `hodl.allocation_pct` (10%)
of it aside, at most `max_single_accumulation_usd` a trade and `daily_limit_usd` a UTC day, split by
`hodl.split` (a third each to USDT, XRP and BTC). What is put aside waits as `pending_usd` until it reaches
the asset's purchase threshold (`min_accumulation_usd`: USDT 1, XRP 25, BTC 15); then USDT is simply held
and BTC or XRP is bought at the market. Bags are never sold: rebalancing, breakers and ceiling sells leave
them out (`reserved`), the allocation excludes them, and the drawdown limit is measured without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.models.trading import QUOTE, Position
from triplegain.settings import HodlSettings

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class HodlBag(BaseModel):
    """One asset's bag: what it holds, and what was put aside for it but not yet bought."""

    model_config = _FROZEN

    amount: Decimal = Field(Decimal(0), ge=0, description="Held in the bag (units of the asset)")
    pending_usd: Decimal = Field(Decimal(0), ge=0, description="Put aside, not yet bought")
    cost_usd: Decimal = Field(Decimal(0), ge=0, description="Spent on what the bag holds")


class HodlState(BaseModel):
    """Every bag, and what was put aside today (the daily limit)."""

    model_config = _FROZEN

    bags: dict[str, HodlBag] = Field(default_factory=dict)
    day: str | None = Field(None, description="UTC date `day_allocated_usd` counts")
    day_allocated_usd: Decimal = Field(Decimal(0), ge=0)

    def amounts(self) -> dict[str, Decimal]:
        """What each bag holds."""
        return {asset: bag.amount for asset, bag in self.bags.items() if bag.amount > 0}

    def pending_usd(self) -> dict[str, Decimal]:
        """What each bag has put aside and not yet bought."""
        return {asset: bag.pending_usd for asset, bag in self.bags.items() if bag.pending_usd > 0}

    def value_usd(self, prices: Mapping[str, Decimal]) -> Decimal:
        """What the bags hold at these prices (an asset without a price counts at its cost)."""
        total = Decimal(0)
        for asset, bag in self.bags.items():
            price = Decimal(1) if asset == QUOTE else prices.get(f"{asset}/{QUOTE}")
            total += bag.amount * price if price is not None else bag.cost_usd
        return total


class HodlEntry(BaseModel):
    """One line of a bag's history: profit put aside, or a purchase (USDT: simply held)."""

    model_config = _FROZEN

    at: AwareDatetime
    asset: str
    kind: Literal["allocated", "bought", "held"]
    usd: Decimal
    amount: Decimal = Decimal(0)
    price: Decimal | None = None
    position_id: str | None = None


def allocate(
    state: HodlState, position: Position, at: datetime, s: HodlSettings
) -> tuple[HodlState, list[HodlEntry]]:
    """Put aside the bags' share of a closed position's profit; nothing for a loss or a small profit."""
    pnl = position.realized_pnl or Decimal(0)
    if not s.enabled or pnl < s.min_profit_usd:
        return state, []
    day = at.date().isoformat()
    used = state.day_allocated_usd if state.day == day else Decimal(0)
    share = min(pnl * s.allocation_pct / HUNDRED, s.max_single_accumulation_usd, s.daily_limit_usd - used)
    share = share.quantize(CENT, ROUND_DOWN)
    if share <= 0:
        return state, []
    bags, entries = dict(state.bags), []
    for asset, pct in s.split.items():
        part = (share * pct / HUNDRED).quantize(Decimal("0.0001"), ROUND_DOWN)
        if part <= 0:
            continue
        bag = bags.get(asset, HodlBag())
        bags[asset] = bag.model_copy(update={"pending_usd": bag.pending_usd + part})
        entries.append(HodlEntry(at=at, asset=asset, kind="allocated", usd=part, position_id=position.id))
    return HodlState(bags=bags, day=day, day_allocated_usd=used + share), entries


def due_purchases(state: HodlState, s: HodlSettings) -> dict[str, Decimal]:
    """The assets whose pending amount reached its purchase threshold, and that amount in USD."""
    return {
        asset: bag.pending_usd
        for asset, bag in state.bags.items()
        if bag.pending_usd > 0 and bag.pending_usd >= s.min_accumulation_usd.get(asset, Decimal(0))
    }


def record_purchase(
    state: HodlState, asset: str, spent_usd: Decimal, amount: Decimal, price: Decimal | None, at: datetime
) -> tuple[HodlState, HodlEntry]:
    """A bag's purchase done (for USDT: the pending cash now held): its pending amount becomes holdings."""
    bag = state.bags.get(asset, HodlBag())
    pending = max(bag.pending_usd - spent_usd, Decimal(0))
    updated = HodlBag(amount=bag.amount + amount, pending_usd=pending, cost_usd=bag.cost_usd + spent_usd)
    kind: Literal["bought", "held"] = "held" if asset == QUOTE else "bought"
    entry = HodlEntry(at=at, asset=asset, kind=kind, usd=spent_usd, amount=amount, price=price)
    return state.model_copy(update={"bags": {**state.bags, asset: updated}}), entry


def reserved(configured: Mapping[str, Decimal], state: HodlState | None) -> dict[str, Decimal]:
    """What rebalancing, breakers and ceiling sells must leave alone: the configured amounts
    (`portfolio.hodl`) plus what the bags accumulated, and the cash put aside for them."""
    out = dict(configured)
    if state is not None:
        for asset, bag in state.bags.items():
            out[asset] = out.get(asset, Decimal(0)) + bag.amount
            if bag.pending_usd > 0:
                out[QUOTE] = out.get(QUOTE, Decimal(0)) + bag.pending_usd
    return out
