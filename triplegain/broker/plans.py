"""What a live market order is for, journalled before it is sent: its fill then means the same thing to
whoever reads it, the run that sent it or, when that run died before the exchange's reply came, the next
reconciliation.

A run killed while its order is in flight leaves the order on the exchange, filled, and nothing in the
books: without its plan the next run would see only a status change and a balance that moved, and trade on
books missing a position (an entry bought twice, half of it unprotected; a sale recorded at a guessed price).
With it, `ExchangeBroker` and reconciliation build the order's `Execution` by the same code from the same
fill: the position opened (with its levels), closed or reduced, exactly as the run would have recorded it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.broker.live import OrderState, fill_from
from triplegain.broker.orders import closed_position, opened_position, split_position
from triplegain.models.cycle import Execution
from triplegain.models.enums import OrderStatus
from triplegain.models.trading import Fill, Order, Position, TradeProposal

Purpose = Literal["open", "close", "reduce", "rebalance"]


class OrderPlan(BaseModel):
    """A market order and what its fill does: `open` a position for `proposal`, `close` `positions`,
    `reduce` `positions[0]` by what fills, or a `rebalance` trade that moves balances only (ValueError when
    what its purpose needs is missing, here or when read back)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: Purpose
    order: Order = Field(description="The desk's order as sent (pending), at its reference price")
    at: AwareDatetime = Field(description="The run's market time: the fill's and the positions' time")
    proposal: TradeProposal | None = Field(None, description="open: the approved trade, with its levels")
    positions: list[Position] = Field(default_factory=list, description="close / reduce: what it sells")
    reason: str = Field("", description="close / reduce: why (the positions' close reason)")

    @model_validator(mode="after")
    def _has_what_its_purpose_needs(self) -> OrderPlan:
        if self.purpose == "open" and self.proposal is None:
            raise ValueError(f"order {self.order.client_order_id}: an open needs its proposal")
        if self.purpose in ("close", "reduce") and not self.positions:
            raise ValueError(
                f"order {self.order.client_order_id}: a {self.purpose} needs the positions it sells"
            )
        return self

    def outcome(self, state: OrderState) -> tuple[Order, Fill | None]:
        """The desk's order as the exchange left it (filled for what filled; why not, when nothing did),
        and its fill."""
        if state.filled <= 0:
            reason = state.note or f"the exchange left it {state.status} with nothing filled"
            return self.order.model_copy(update={"status": state.status, "reason": reason}), None
        fill = fill_from(state, self.order.client_order_id, self.order.reference_price, self.at)
        return self.order.model_copy(update={"status": OrderStatus.FILLED, "size": fill.size}), fill

    def executed(self, done: Order, fill: Fill | None) -> Execution:
        """What the order did, given how it ended (`outcome`)."""
        if fill is None:
            return Execution(order=done)
        order_id, at = self.order.client_order_id, self.at
        if self.purpose == "open":
            assert self.proposal is not None
            position = opened_position(self.proposal, order_id, fill, self.order.cycle_id, at)
            return Execution(order=done, fill=fill, opened_position=position)
        if self.purpose == "close":
            size = sum((p.size for p in self.positions), Decimal(0))
            closed = [closed_position(p, fill, size, at, self.reason) for p in self.positions]
            return Execution(order=done, fill=fill, closed_positions=closed)
        if self.purpose == "reduce":
            part, rest = split_position(self.positions[0], fill.size, order_id, fill, at, self.reason)
            return Execution(order=done, fill=fill, closed_positions=[part], reduced_positions=[rest])
        return Execution(order=done, fill=fill)
