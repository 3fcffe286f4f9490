"""Order execution: the paper broker, and the exchange broker on a live account (`broker.exchange`, on ccxt
through `broker.live`). Both answer the desk through `Broker`; `broker.orders` is what they share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from triplegain.broker.paper import PaperBroker, client_order_id
from triplegain.models.cycle import Execution
from triplegain.models.trading import Position, TradeProposal


class Broker(Protocol):
    """What the desk asks of a broker; `PaperBroker` and `ExchangeBroker` answer it the same way."""

    protects_on_exchange: bool  # stop-losses and take-profits rest on the exchange (live), or the desk
    # watches the candles for them (paper)
    urgent: list[str]  # URGENT problems met on the way (an unprotected position), for the report
    follow_ups: list[Execution]  # orders the broker made on its own account (closing an unprotected position)

    @property
    def balances(self) -> dict[str, Decimal]: ...

    def open(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution: ...

    def close(
        self,
        positions: Sequence[Position],
        order_id: str,
        cycle_id: str,
        price: Decimal,
        at: datetime,
        reason: str,
        slippage: bool = True,
    ) -> Execution: ...

    def rebalance(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution: ...

    def reduce(
        self,
        position: Position,
        pct: Decimal,
        order_id: str,
        cycle_id: str,
        price: Decimal,
        at: datetime,
        reason: str,
    ) -> Execution: ...

    def exchange_exits(self, positions: Sequence[Position], at: datetime) -> list[Execution]:
        """The positions' protection orders that filled on the exchange since the last run, as closes."""
        ...

    def move_stop(
        self, position: Position, stop: Decimal, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution | None:
        """Trail a position's stop-loss up to `stop` where it rests (the exchange); the position's exit when
        its protection filled meanwhile, else None."""
        ...


__all__ = ["Broker", "PaperBroker", "client_order_id"]
