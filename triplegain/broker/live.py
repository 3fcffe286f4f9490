"""Orders on a real exchange through ccxt that can be neither lost nor doubled.

The discipline, after where live trading systems lose money (hummingbot #3374: an accepted order whose reply
was lost, marked failed and placed again six times):

1. The order's intent and its client order id are written to the journal *before* anything is sent. A run
   killed after that finds the intent on restart.
2. The exchange receives the client id (ccxt's `clientOrderId`; Kraken's `cl_ord_id`), derived from the
   cycle and the purpose of the order, so a retried run asks for the same order again.
3. An order is only ever sent again after the exchange was asked for its client id and does not have it,
   and only after an answer that proves the exchange refused it (429, 418, "rate limit exceeded"). A reply
   lost to a timeout or a dropped connection is resolved by asking for the client id, with backoff; if the
   exchange still does not know it, the order stays `pending`, `OrderUnresolved` is raised (the run must stop
   trading) and reconciliation decides. Never a blind resend.
4. Every status change is appended to the order's status log (the reference's statuses: pending, open,
   partially_filled, filled, cancelled, expired, rejected, error). Partial fills are fills.
5. Calls are budgeted as the reference does (60 calls and 30 orders a minute), beside ccxt's own limiter.

`broker.exchange` puts this behind the paper broker's interface, `broker.protection` keeps stop-losses and
take-profits on the exchange, `broker.reconcile` checks the account before a run trades.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import ccxt

from triplegain.models.cycle import Execution
from triplegain.models.enums import OrderStatus, Side
from triplegain.models.trading import Fill, split_symbol

if TYPE_CHECKING:  # plans build on this module's order states
    from triplegain.broker.plans import OrderPlan

FILLED = (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)  # something traded
TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED, OrderStatus.ERROR}
)
# Answers that prove the exchange refused the request before acting on it: sending again is safe once the
# client id is confirmed unknown.
REFUSED = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
# Answers after which nobody knows whether the order was placed: ask, never resend blindly.
UNKNOWN_OUTCOME = (ccxt.RequestTimeout, ccxt.NetworkError)


def live_client_id(cycle_id: str, *parts: str) -> str:
    """A stable client order id from the cycle and what the order is for, as a UUID (Kraken's cl_ord_id
    takes a UUID or 18 characters; most ccxt exchanges take 36): a retried run asks for the same order."""
    digest = hashlib.sha256("|".join(("live", cycle_id, *parts)).encode()).hexdigest()
    return str(uuid.UUID(hex=digest[:32]))


@dataclass(frozen=True)
class OrderIntent:
    """What is to be sent: stored before sending, the key to every later question about it."""

    client_id: str
    cycle_id: str
    symbol: str
    side: Side
    type: str  # market | limit | stop-loss | take-profit
    amount: Decimal  # base-asset quantity
    purpose: str  # open | close | stop_loss | take_profit | rebalance | ...
    price: Decimal | None = None  # the limit price, or the trigger of a stop-loss / take-profit
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"order {self.client_id}: amount must be positive, got {self.amount}")
        if self.type not in ("market", "limit", "stop-loss", "take-profit"):
            raise ValueError(f"order {self.client_id}: unknown order type {self.type!r}")
        if self.type != "market" and (self.price is None or self.price <= 0):
            raise ValueError(f"order {self.client_id}: a {self.type} order needs a positive price")


@dataclass(frozen=True)
class OrderState:
    """What is known of an order: its intent, and what the exchange said last."""

    intent: OrderIntent
    status: OrderStatus = OrderStatus.PENDING
    exchange_id: str | None = None
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    cost: Decimal = Decimal(0)  # what the filled part cost in the quote asset, as the exchange reports it
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    note: str | None = None
    sends: int = 0  # how many times it was sent to the exchange (1 unless the exchange refused a send)

    @property
    def done(self) -> bool:
        """Nothing more will happen to it on the exchange."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class JournalledExecution:
    """What a live order did (`Execution`: the order, its fill, the position it opened, reduced or
    closed), journalled by the broker the moment the fill was known, before the run records its work."""

    run_id: str
    execution: Execution
    cost: Decimal  # the fill's cost in the quote asset as the exchange reported it; 0 when it gave none
    journalled_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class StatusChange:
    """One line of an order's status log."""

    client_id: str
    at: datetime
    status: OrderStatus
    note: str


class OrderJournal(Protocol):
    """Where orders are written before they are sent (`storage.live_orders.SqlOrderJournal` in the
    project database; `MemoryJournal` in tests)."""

    def get(self, client_id: str) -> OrderState | None:
        """The order with this client id, if it was ever intended."""
        ...

    def save(self, state: OrderState, note: str) -> None:
        """Store the order's state (the intent on first save) and append `note` to its status log; durable
        when it returns."""
        ...

    def save_execution(self, done: JournalledExecution) -> None:
        """Store what a filled order did, before its run records it; durable when it returns (a run
        killed before its commit leaves it for reconciliation to find)."""
        ...

    def save_plan(self, client_id: str, planned: OrderPlan) -> None:
        """Store what the market order `client_id` is for, before it is sent (the first plan stays: the
        same client id is the same order); durable when it returns."""
        ...

    def plan(self, client_id: str) -> OrderPlan | None:
        """What the market order `client_id` was for, if its plan was journalled."""
        ...


class MemoryJournal:
    """An in-memory journal: tests and the contract suite."""

    def __init__(self) -> None:
        self.states: dict[str, OrderState] = {}
        self.log: list[StatusChange] = []
        self.executions: dict[str, JournalledExecution] = {}  # by the desk's order id
        self.plans: dict[str, OrderPlan] = {}  # by the exchange client id

    def get(self, client_id: str) -> OrderState | None:
        return self.states.get(client_id)

    def save(self, state: OrderState, note: str) -> None:
        self.states[state.intent.client_id] = state
        self.log.append(StatusChange(state.intent.client_id, datetime.now(UTC), state.status, note))

    def save_execution(self, done: JournalledExecution) -> None:
        self.executions.setdefault(done.execution.order.client_order_id, done)

    def save_plan(self, client_id: str, planned: OrderPlan) -> None:
        self.plans.setdefault(client_id, planned)

    def plan(self, client_id: str) -> OrderPlan | None:
        return self.plans.get(client_id)


class OrderUnresolved(RuntimeError):
    """An order's outcome is unknown (a lost reply the exchange does not know of yet): stop trading this
    run; reconciliation settles it. The order is never sent again on a guess."""

    def __init__(self, state: OrderState) -> None:
        intent = state.intent
        super().__init__(
            f"order {intent.client_id} ({intent.side} {intent.amount} {intent.symbol}): {state.note}"
        )
        self.state = state


class CallBudget:
    """The reference's budgets: at most `calls` exchange calls and `orders` order placements in any
    sliding minute. `wait` blocks until the next call fits (the clock and the sleep are injectable)."""

    def __init__(
        self,
        calls: int = 60,
        orders: int = 30,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls < 1 or orders < 1:
            raise ValueError(f"call budgets must be at least 1 a minute, got calls={calls} orders={orders}")
        self.calls, self.orders = calls, orders
        self.clock, self.sleep = clock, sleep
        self._calls: deque[float] = deque()
        self._orders: deque[float] = deque()

    def wait(self, placing: bool = False) -> None:
        """Block until one more call (an order placement when `placing`) fits in the budgets."""
        while True:
            now = self.clock()
            for stamps in (self._calls, self._orders):
                while stamps and now - stamps[0] >= 60:
                    stamps.popleft()
            waits = [60 - (now - self._calls[0])] if len(self._calls) >= self.calls else []
            if placing and len(self._orders) >= self.orders:
                waits.append(60 - (now - self._orders[0]))
            if not waits:
                break
            self.sleep(max(waits))
        self._calls.append(now)
        if placing:
            self._orders.append(now)


@dataclass(frozen=True)
class Backoff:
    """How long to wait after a refusal or before asking again: doubling from `first` to `cap` seconds, at
    most `attempts` tries in all."""

    first: float = 1.0
    cap: float = 30.0
    attempts: int = 5

    def delays(self) -> list[float]:
        """The waits between the tries."""
        return [min(self.cap, self.first * 2**i) for i in range(self.attempts - 1)]


class LiveBroker:
    """Places, follows and cancels orders on a ccxt exchange, journalled before every send."""

    def __init__(
        self,
        exchange: Any,
        journal: OrderJournal,
        budget: CallBudget | None = None,
        backoff: Backoff | None = None,
        lookup: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange, self.journal = exchange, journal
        self.budget = budget or CallBudget()
        self.backoff = backoff or Backoff()
        self.lookups = lookup or Backoff(first=1.0, cap=8.0, attempts=4)
        self.sleep = sleep

    def submit(self, intent: OrderIntent) -> OrderState:
        """Place the order once: a known client id is never placed again (a retried run gets what the first
        one placed, refreshed), an order whose earlier send went unanswered is looked up first.

        Raises OrderUnresolved when the exchange's answer was lost and it does not know the order."""
        known = self.journal.get(intent.client_id)
        if known is not None:
            if known.intent != replace(intent, created_at=known.intent.created_at):
                raise ValueError(
                    f"client id {intent.client_id} was already used for another order: {known.intent}"
                )
            if known.done:
                return known
            if known.exchange_id is not None:
                return self.refresh(known)
            if known.sends:
                return self._resolve(known, "its earlier send was never answered")
        state = known or OrderState(intent)
        if known is None:
            self.journal.save(state, "intent stored before sending")
        return self._send(state)

    def price_tick(self, symbol: str) -> Decimal | None:
        """The exchange's price step for `symbol` (ccxt's market precision), or None when it gives none."""
        if not getattr(self.exchange, "markets", None):
            self.budget.wait()
            self.exchange.load_markets()
        step = (self.exchange.markets.get(symbol) or {}).get("precision", {}).get("price")
        return Decimal(str(step)) if step else None

    def lookup(self, state: OrderState) -> OrderState:
        """An order never confirmed, settled without sending anything: found by its client id, or, if it
        was never sent (the run stopped between storing the intent and sending it), closed as an error
        that nothing happened. OrderUnresolved when it was sent and the exchange does not know it."""
        if state.sends == 0:
            return self._finish(state, OrderStatus.ERROR, "never sent: the run stopped before sending it")
        return self._resolve(state, "its send was never answered")

    def refresh(self, state: OrderState) -> OrderState:
        """The order as the exchange has it now (by its exchange id), journalled if it changed."""
        if state.exchange_id is None:
            return self._resolve(state, "refreshing an order never confirmed")
        self.budget.wait()
        answer = self.exchange.fetch_order(state.exchange_id, state.intent.symbol)
        return self._record(state, answer, "refreshed from the exchange")

    def cancel(self, state: OrderState) -> OrderState:
        """Cancel an open order; the refreshed state (it may have filled meanwhile)."""
        if state.done:
            return state
        if state.exchange_id is None:
            state = self._resolve(state, "cancelling an order never confirmed")
        if state.exchange_id is not None and not state.done:
            self.budget.wait()
            with contextlib.suppress(ccxt.OrderNotFound):  # already closed: the refresh says how
                self.exchange.cancel_order(state.exchange_id, state.intent.symbol)
            return self.refresh(state)
        return state

    def _send(self, state: OrderState) -> OrderState:
        intent = state.intent
        delays = self.backoff.delays()
        for attempt in range(len(delays) + 1):
            self.budget.wait(placing=True)
            state = replace(state, sends=state.sends + 1)
            self.journal.save(state, f"sent (attempt {attempt + 1})")
            try:
                answer = self.exchange.create_order(
                    intent.symbol,
                    intent.type if intent.type in ("market", "limit") else "market",
                    intent.side.value,
                    float(intent.amount),
                    float(intent.price) if intent.type == "limit" and intent.price is not None else None,
                    self._params(intent),
                )
            except REFUSED as e:
                if attempt == len(delays):
                    return self._finish(state, OrderStatus.ERROR, f"refused {state.sends} times: {e}")
                self.sleep(delays[attempt])
                found = self._find(intent)  # refused, or so it said: make sure before sending again
                if found is not None:
                    return self._record(state, found, "found on the exchange after a refusal")
                continue
            except UNKNOWN_OUTCOME as e:
                return self._resolve(state, f"no answer to the send ({type(e).__name__})")
            except ccxt.InsufficientFunds as e:
                return self._finish(state, OrderStatus.REJECTED, f"insufficient funds: {_short(e)}")
            except ccxt.InvalidOrder as e:
                return self._finish(state, OrderStatus.REJECTED, f"invalid order: {_short(e)}")
            except ccxt.ExchangeError as e:
                return self._finish(state, OrderStatus.REJECTED, f"exchange refused it: {_short(e)}")
            state = replace(state, exchange_id=str(answer["id"]))
            return (
                self.refresh(state) if answer.get("status") is None else self._record(state, answer, "placed")
            )
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _resolve(self, state: OrderState, why: str) -> OrderState:
        """Ask the exchange for the order's client id, with backoff; never send it again."""
        waits = [0.0, *self.lookups.delays()]
        for wait in waits:
            if wait:
                self.sleep(wait)
            try:
                found = self._find(state.intent)
            except UNKNOWN_OUTCOME:
                continue
            if found is not None:
                return self._record(state, found, f"{why}; found by its client id")
        unresolved = replace(
            state,
            note=f"{why}; the exchange did not know its client id after {len(waits)} lookups; not sent "
            "again: reconciliation decides",
        )
        self.journal.save(unresolved, unresolved.note or "")
        raise OrderUnresolved(unresolved)

    def _find(self, intent: OrderIntent) -> dict[str, Any] | None:
        """The exchange's order with this client id, open or closed, or None."""
        params = {"clientOrderId": intent.client_id}
        for fetch in (self.exchange.fetch_open_orders, self.exchange.fetch_closed_orders):
            self.budget.wait()
            for order in fetch(intent.symbol, None, None, params):
                if order.get("clientOrderId") == intent.client_id:
                    return dict(order)
        return None

    def _params(self, intent: OrderIntent) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": intent.client_id}
        if getattr(self.exchange, "id", None) == "kraken":
            # fees in the quote asset, as the books (and the paper broker) keep them: Kraken charges a
            # sale's fee in the base asset by default, so what is left of a reduced position would not all
            # be held, and its stop-loss, sized for the position, could not sell it
            params["oflags"] = "fciq"
        if intent.type == "stop-loss":
            params["stopLossPrice"] = float(intent.price or 0)
        elif intent.type == "take-profit":
            params["takeProfitPrice"] = float(intent.price or 0)
        return params

    def asset_step(self, code: str | None) -> Decimal | None:
        """The smallest amount of asset `code` the exchange's ledger holds (ccxt's currency precision), or
        None when it gives none."""
        currencies = getattr(self.exchange, "currencies", None) or {}
        step = (currencies.get(code) or {}).get("precision") if code else None
        return Decimal(str(step)) if step else None

    def _amount(self, value: Any, code: str | None) -> Decimal | None:
        """An amount of asset `code` from ccxt, at the ledger's decimals. ccxt computes a Kraken order's cost
        as filled times average price in floats (Kraken's own cost field is truncated), so a fill that cost
        999.73976218 arrives as 999.7397621800001: the books would take a float's last digit."""
        amount = _decimal(value)
        step = self.asset_step(code)
        return amount if amount is None or step is None else amount.quantize(step)

    def _record(self, state: OrderState, answer: dict[str, Any], how: str) -> OrderState:
        filled = _decimal(answer.get("filled")) or Decimal(0)
        fee = answer.get("fee") or {}
        _, quote = split_symbol(state.intent.symbol)
        updated = replace(
            state,
            exchange_id=str(answer.get("id") or state.exchange_id),
            status=_status(answer.get("status"), filled),
            filled=filled,
            average_price=_decimal(answer.get("average")),
            cost=self._amount(answer.get("cost"), quote) or Decimal(0),
            fee=self._amount(fee.get("cost"), fee.get("currency") or quote) or Decimal(0),
            fee_asset=fee.get("currency"),
            # a note on an order never confirmed says why its outcome was unknown: the answer settles it;
            # an order the exchange knew keeps its note (an adopted order waiting for the operator)
            note=None if state.exchange_id is None else state.note,
        )
        if updated != state:
            self.journal.save(updated, f"{how}: {updated.status}, filled {updated.filled}")
        return updated

    def _finish(self, state: OrderState, status: OrderStatus, note: str) -> OrderState:
        done = replace(state, status=status, note=note)
        self.journal.save(done, note)
        return done


def fill_from(state: OrderState, client_order_id: str, reference: Decimal, at: datetime) -> Fill:
    """What filled of an exchange order, as the paper broker records fills: at the exchange's average
    price (`reference` when it gave none), its slippage against `reference`, its fee."""
    _, quote = split_symbol(state.intent.symbol)
    price = state.average_price or reference
    return Fill(
        client_order_id=client_order_id,
        symbol=state.intent.symbol,
        side=state.intent.side,
        price=price,
        size=state.filled,
        fee=state.fee,
        fee_asset=state.fee_asset or quote,
        slippage_pct=(abs(price - reference) / reference * 100).quantize(Decimal("0.000001")),
        filled_at=at,
    )


def _status(raw: str | None, filled: Decimal) -> OrderStatus:
    """ccxt's unified status (open, closed, canceled, expired, rejected) in the reference's vocabulary."""
    if raw == "open":
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    return {
        "closed": OrderStatus.FILLED,
        "canceled": OrderStatus.CANCELLED,
        "cancelled": OrderStatus.CANCELLED,
        "expired": OrderStatus.EXPIRED,
        "rejected": OrderStatus.REJECTED,
    }.get(raw or "", OrderStatus.PENDING)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _short(error: Exception) -> str:
    return str(error)[:200]
