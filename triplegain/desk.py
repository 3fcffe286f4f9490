"""The desk of one coordination pass: the broker (paper, or the exchange's) and the account it changes.

It holds what the coordinator's handlers, the circuit-breaker actions and a rebalance change as they go:
balances (in the broker), open positions, risk memory, the coordinator's state, each symbol's outcome and
the report's notes. Every order goes through `settle`, which applies the result and publishes it.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from triplegain.broker import Broker
from triplegain.broker.orders import positions_after
from triplegain.broker.paper import PaperBroker, client_order_id
from triplegain.bus import MessageBus, Priority, Topic
from triplegain.control import StateChange
from triplegain.cycle_types import CoordinationInput
from triplegain.degradation import Health
from triplegain.events import (
    CoordinatorNoticed,
    OrderFilled,
    OrderRejected,
    PositionClosed,
    PositionOpened,
    TradeRejected,
)
from triplegain.exits import Trailing, find_exit, trailed_stop
from triplegain.hodl import HodlEntry, allocate, reserved
from triplegain.models.cycle import Execution, SymbolOutcome
from triplegain.models.enums import OrderStatus
from triplegain.models.market import MarketSnapshot, to_decimal
from triplegain.models.trading import Portfolio, Position, RiskVerdict
from triplegain.risk.state import RiskState, record_execution, record_trade_result
from triplegain.settings import PortfolioSettings, Settings, WatchSettings

SOURCE = "coordinator"


def trailing_policy(watch: WatchSettings) -> Trailing | None:
    """How stops trail behind the best price, when trailing is on."""
    if not watch.trailing_stop:
        return None
    return Trailing(float(watch.trailing_activation_pct), float(watch.trailing_distance_pct))


class Desk:
    """The account under one coordination pass, and the bus it reports on."""

    def __init__(
        self,
        request: CoordinationInput,
        settings: Settings,
        bus: MessageBus,
        prices: dict[str, Decimal],
        risk: RiskState,
        health: Health,
        broker: Broker | None = None,
    ) -> None:
        account = request.account
        self.run_id, self.at, self.settings, self.bus = request.run_id, request.at, settings, bus
        self.prices = prices
        self.state, self.state_set_by = account.coordinator, account.state_set_by
        self.state_changes: list[StateChange] = []
        self.risk, self.health = risk, health
        self.broker: Broker = broker or PaperBroker(
            account.balances, settings.broker, settings.market.symbol_specs
        )
        self.positions = list(account.positions)
        self.closed: list[Position] = []
        self.notes: list[str] = []
        self.outcomes: dict[str, SymbolOutcome] = {}
        self.moved_stops: dict[str, Position] = {}
        self.breaker_executions: dict[str, list[Execution]] = {}
        self.trailing = trailing_policy(settings.watch)
        self.hodl = account.hodl
        self.hodl_entries: list[HodlEntry] = []

    def reserved(self) -> dict[str, Decimal]:
        """What no sell may touch: the configured hodl amounts, the bags and the cash put aside for them."""
        return reserved(self.settings.portfolio.hodl, self.hodl)

    def portfolio_settings(self) -> PortfolioSettings:
        """The portfolio settings with the bags as the allocation's exclusions."""
        return self.settings.portfolio.model_copy(update={"hodl": self.reserved()})

    async def publish(self, topic: Topic, payload: BaseModel, priority: Priority = Priority.NORMAL) -> None:
        """Publish `payload` as the coordinator."""
        await self.bus.publish(self.bus.message(topic, SOURCE, payload, priority))

    async def notice(self, text: str) -> None:
        """A line for the report, published as a notice."""
        await self.publish(Topic.SYSTEM_EVENTS, CoordinatorNoticed(text=text))

    def update(self, symbol: str, **fields: object) -> None:
        """Set fields of the symbol's outcome."""
        self.outcomes[symbol] = self.outcomes[symbol].model_copy(update=fields)

    async def rejected(self, symbol: str, verdict: RiskVerdict) -> None:
        """Record and publish a verdict that refused the trade."""
        self.update(symbol, verdict=verdict)
        await self.publish(Topic.RISK_ALERTS, TradeRejected(symbol=symbol, verdict=verdict), Priority.HIGH)

    def portfolio(self) -> Portfolio:
        """The account as it stands now, at this run's prices."""
        return Portfolio(
            balances=self.broker.balances, prices=self.prices, positions=self.positions, as_of=self.at
        )

    def record_exit(self, symbol: str, execution: Execution) -> None:
        """Keep a breaker's order in the symbol's outcome, beside its stop-loss / take-profit exits."""
        self.breaker_executions.setdefault(symbol, []).append(execution)

    async def settle(self, execution: Execution) -> None:
        """Apply an order's result to positions and risk memory, publish it, then what the broker did on its
        own account on the way (an unprotected position closed) and anything URGENT it met."""
        await self._apply(execution)
        await self.settle_follow_ups()

    async def settle_follow_ups(self) -> None:
        """What the broker did on its own account (an unprotected position closed) and anything URGENT it
        met: applied, published."""
        while self.broker.follow_ups:
            await self._apply(self.broker.follow_ups.pop(0))
        while self.broker.urgent:
            text = self.broker.urgent.pop(0)
            self.notes.append(text)
            await self.publish(Topic.RISK_ALERTS, CoordinatorNoticed(text=text), Priority.URGENT)

    async def _apply(self, execution: Execution) -> None:
        filled = execution.order.status is OrderStatus.FILLED and execution.fill is not None
        self.risk, cooling = record_execution(self.risk, filled, self.at, self.settings.risk)
        if cooling:
            await self.notice(
                f"{self.settings.risk.execution_error_limit} order errors in a row: no new entry until "
                f"{self.risk.execution_cooldown_until:%Y-%m-%d %H:%M} UTC"
            )
        if not filled or execution.fill is None:
            await self.publish(Topic.EXECUTION_EVENTS, OrderRejected(order=execution.order), Priority.HIGH)
            return
        await self.publish(Topic.EXECUTION_EVENTS, OrderFilled(order=execution.order, fill=execution.fill))
        self.positions = positions_after(self.positions, [execution])
        if execution.opened_position is not None:
            await self.publish(Topic.PORTFOLIO_UPDATES, PositionOpened(position=execution.opened_position))
        for position in execution.closed_positions:
            self.closed.append(position)
            pnl = position.realized_pnl or Decimal(0)
            self.risk = record_trade_result(self.risk, position.symbol, pnl, self.at, self.settings.risk)
            self.hodl, aside = allocate(self.hodl, position, self.at, self.settings.hodl)
            if aside:
                self.hodl_entries += aside
                total = sum((e.usd for e in aside), Decimal(0))
                self.notes.append(
                    f"{position.symbol}: {total:.2f} USD of the profit put aside for the hodl bags"
                )
            await self.publish(Topic.PORTFOLIO_UPDATES, PositionClosed(position=position), Priority.HIGH)

    async def exits(self, snapshot: MarketSnapshot) -> list[Execution]:
        """Stop-loss, take-profit and trailing exits since the last run: on a live account those the
        exchange filled, on paper those the candles triggered."""
        mine = [p for p in self.positions if p.symbol == snapshot.symbol]
        if self.broker.protects_on_exchange:
            done = self.broker.exchange_exits(mine, self.at)
            for execution in done:
                await self.settle(execution)
            gone = {p.id for e in done for p in e.closed_positions}
            for position in [p for p in mine if p.id not in gone]:
                stop = self._trailed(position, snapshot)
                if stop is None:
                    continue
                price = to_decimal(snapshot.candles.close[-1])
                exit_ = self.broker.move_stop(position, stop, self.run_id, price, self.at)
                if exit_ is not None:  # its stop or take-profit filled first: recorded, nothing moved
                    await self.settle(exit_)
                    done.append(exit_)
                elif self.broker.follow_ups or self.broker.urgent:  # no new pair: closed, URGENT
                    await self.settle_follow_ups()
                else:
                    self._moved(position, stop)
            return done
        executions = []
        for position in mine:
            trigger = find_exit(position, snapshot.candles, self.trailing)
            if trigger is None:
                self._trail(position, snapshot)
                continue
            order_id = client_order_id(self.run_id, position.id, trigger.reason)
            execution = self.broker.close(
                [position],
                order_id,
                self.run_id,
                to_decimal(trigger.price),
                trigger.at,
                trigger.reason,
                slippage=trigger.slippage,
            )
            await self.settle(execution)
            executions.append(execution)
        return executions

    def _trail(self, position: Position, snapshot: MarketSnapshot) -> None:
        """Move a trailing stop up to where the candles since entry put it (never down)."""
        stop = self._trailed(position, snapshot)
        if stop is not None:
            self._moved(position, stop)

    def _trailed(self, position: Position, snapshot: MarketSnapshot) -> Decimal | None:
        """Where trailing puts the position's stop now, when that is above where it is (else None)."""
        if self.trailing is None:
            return None
        stop = trailed_stop(position, snapshot.candles, self.trailing)
        if stop is None:
            return None
        spec = self.settings.market.symbol_specs.get(position.symbol)
        if spec is not None:
            stop = stop.quantize(Decimal(1).scaleb(-spec.price_decimals))
        if position.stop_loss is not None and stop <= position.stop_loss:
            return None
        return stop

    def _moved(self, position: Position, stop: Decimal) -> None:
        """The books' stop of `position` moved to `stop` (saved with the run)."""
        moved = position.model_copy(update={"stop_loss": stop})
        self.positions = [moved if p.id == position.id else p for p in self.positions]
        self.moved_stops[position.id] = moved
        self.notes.append(
            f"{position.symbol}: trailing stop of {position.id} moved {position.stop_loss} -> {stop}"
        )
