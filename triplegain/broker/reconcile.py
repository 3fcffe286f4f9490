"""Reconciliation before any trade: the database's view of the live account against the exchange's (run
by every live cycle, market watch and DCA batch first, and by `triplegain reconcile`).

First (`recover_unread`), every market order of ours whose run died before the exchange's reply came and
that filled: its execution, built from the plan journalled before it was sent (`broker.plans`), is
journalled as its run would have journalled it, so that what follows finds it as in 5.

What is compared, in this order:

1. every order the journal has not settled (pending, open, partially filled): asked for by its exchange id,
   or by its client id when no reply ever came; what changed while no run was going (a stop that filled) is
   *explained* and applied; an order the exchange does not know is *unexplained* (lost);
2. every order open on the exchange: one the journal does not know is adopted as external (journalled as
   such, never ignored) and stays unexplained, run after run, until the operator accepts it
   (`accept_external`, `triplegain reconcile --accept`);
3. every fill since the last sync: one of an order the journal does not know is unexplained;
4. every protected position: its stop-loss and take-profit must be open on the exchange;
5. every execution the broker journalled that no run recorded (a run killed, or its commit failed, after
   an order filled): unexplained until the operator's word records it (`triplegain reconcile --accept`:
   the order, the fill and the position it opened, reduced or closed, exactly as the broker made them);
6. the balances: what the database expects, moved by those executions and the explained fills, against
   the exchange's; and the open positions against what the exchange account holds of their assets (a
   position sold outside TripleGain is unexplained until the operator's word closes it);
7. every open position whose protection a stopped run never finished placing (killed after the entry
   filled, or between its stop-loss and take-profit): placed now under the client ids that run would have
   used (`finish_protections`), explained; URGENT and unexplained when it cannot be placed, or when the
   exchange left a question unanswered or the position's asset balance is in question.

Anything unexplained means no trading this run (fail closed). A report the exchange did not give (a call that
failed) is never read as "nothing there": it is a difference of its own, and trading stops.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt

from triplegain.broker.live import (
    FILLED,
    JournalledExecution,
    LiveBroker,
    OrderIntent,
    OrderJournal,
    OrderState,
    OrderUnresolved,
)
from triplegain.broker.orders import (
    closed_position,
    moved_by_fill,
    positions_after,
    round_size,
    sell_order,
    split_position,
)
from triplegain.broker.protection import (
    Protection,
    ProtectionDesk,
    ProtectionFailed,
    Unfinished,
    finish_protection,
)
from triplegain.models.cycle import CycleReport, Execution, SymbolOutcome
from triplegain.models.enums import CycleStatus, OrderStatus, Side
from triplegain.models.trading import Fill, Portfolio, Position, split_symbol
from triplegain.settings import SymbolSpec

AWAITING = "adopted as external: awaiting the operator's word"
QUOTE_TOLERANCE = Decimal("0.01")  # a cent of rounding in fees and costs
UNPROTECTED = ": the position is unprotected (URGENT)"  # how a protection_missing difference ends
BASE_TOLERANCE = Decimal("0.00000001")  # one unit of the smallest lot Kraken has


@dataclass(frozen=True)
class LocalBook:
    """What the database says the exchange account holds: its balances, the protected positions, the
    time of the last reconciliation (exchange milliseconds; None before the first), and the executions
    the broker journalled that no run recorded."""

    balances: dict[str, Decimal]
    protections: list[Protection] = field(default_factory=list)
    last_sync_ms: int | None = None
    unrecorded: list[JournalledExecution] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)  # open, once the unrecorded are recorded


@dataclass(frozen=True)
class Difference:
    """One thing the two views disagree on; `explained` ones are applied without asking anyone."""

    kind: str  # order_changed | order_lost | external_order | external_fill | protection_missing
    # | protection_placed | unrecorded_execution | balance | position_unheld | exchange_unanswered
    subject: str
    detail: str
    explained: bool = False
    trade: dict[str, str] | None = None  # an external fill's order, symbol, side, amount and price
    held: Decimal | None = None  # position_unheld: what the exchange account holds of the asset
    positions: tuple[str, ...] = ()  # position_unheld: the open positions of the asset

    def __str__(self) -> str:
        mark = "explained" if self.explained else "UNEXPLAINED"
        return f"[{mark}] {self.kind} {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Reconciliation:
    """The differences found, the orders updated or adopted on the way, and the exchange's balances."""

    differences: list[Difference]
    updated: list[OrderState]
    adopted: list[OrderState]
    exchange_balances: dict[str, Decimal]

    @property
    def trading_allowed(self) -> bool:
        """True only when every difference is explained."""
        return all(d.explained for d in self.differences)

    @property
    def unexplained(self) -> list[Difference]:
        """What stops trading, for the report, the event and the alert."""
        return [d for d in self.differences if not d.explained]

    def report(self) -> str:
        """A plain-text account: every difference, and whether trading may go on."""
        verdict = "trading allowed" if self.trading_allowed else "TRADING STOPPED until resolved"
        lines = [f"reconciliation: {len(self.differences)} difference(s), {verdict}"]
        return "\n".join([*lines, *(f"  {d}" for d in self.differences)])


def reconcile(
    broker: LiveBroker,
    journal: OrderJournal,
    unsettled: Iterable[OrderState],
    known: Iterable[OrderState],
    book: LocalBook,
    lost: dict[str, OrderUnresolved] | None = None,
) -> Reconciliation:
    """Compare the journal and the book with the exchange; see the module's docstring. `unsettled` are the
    journal's orders not yet done, `known` every order it holds (for telling our fills from others').
    `lost`: the orders the exchange did not know when `recover_unread` looked them up just before (by client
    id): lost, without a second backoff."""
    differences: list[Difference] = []
    exchange = broker.exchange
    changes = _orders_now(broker, unsettled, differences, {} if lost is None else lost)
    updated = [now for _, now in changes]
    mine = [*known, *updated]
    open_orders = _ask(exchange.fetch_open_orders, "open orders", differences)
    adopted = _adopt_external(journal, open_orders or [], mine, differences)
    trades = _ask(
        lambda: exchange.fetch_my_trades(None, book.last_sync_ms), "fills since the last sync", differences
    )
    _external_fills(trades or [], mine, differences)
    if open_orders is not None:  # unanswered: already a difference, and no proof of a missing order
        _protection_gaps(book.protections, updated, {str(o["id"]) for o in open_orders}, differences)
    expected = _unrecorded(book.balances, book.unrecorded, differences)
    balances = _ask(exchange.fetch_balance, "balances", differences)
    exchange_balances: dict[str, Decimal] = {}
    if balances is not None:
        exchange_balances = {
            asset: Decimal(str(amount))
            for asset, amount in (balances.get("total") or {}).items()
            if amount is not None
        }
        _balance_gaps(_moved(expected, changes), exchange_balances, differences)
        _unheld(book.positions, _settling(book.protections, updated), exchange_balances, differences)
    return Reconciliation(differences, updated, adopted, exchange_balances)


def recover_unread(
    broker: LiveBroker,
    journal: OrderJournal,
    unsettled: Iterable[OrderState],
    lost: dict[str, OrderUnresolved] | None = None,
) -> list[JournalledExecution]:
    """Market orders of ours whose run died before the exchange's reply came: each the exchange shows done
    with something filled, and whose plan the journal holds (`broker.plans`), is journalled as the
    execution its run would have journalled, built from its plan by the same code, at its real fill. The
    reconciliation that follows finds it unrecorded (trading stops) and counts its fill in the balances;
    the operator's word records it, with the position it opened, closed or reduced. Nothing is sent; an
    order the exchange does not answer for is left to the reconciliation, which says so (one it does not
    know goes into `lost`, for `reconcile` not to look it up again)."""
    lost = {} if lost is None else lost
    recovered = []
    for order in unsettled:
        planned = journal.plan(order.intent.client_id) if order.intent.type == "market" else None
        if planned is None:
            continue
        try:
            now = _order_now(broker, order, lost)
        except (OrderUnresolved, ccxt.BaseError):
            continue
        if not now.done or now.filled <= 0:
            continue
        done, fill = planned.outcome(now)
        journalled = JournalledExecution(planned.order.cycle_id, planned.executed(done, fill), now.cost)
        journal.save_execution(journalled)
        recovered.append(journalled)
    return recovered


def _order_now(broker: LiveBroker, order: OrderState, lost: dict[str, OrderUnresolved]) -> OrderState:
    """The order as the exchange has it now: by its exchange id, or by its client id (with backoff) when no
    reply ever came; nothing is sent. OrderUnresolved when the exchange does not know it, remembered in
    `lost`: one reconciliation looks an order up once (`recover_unread`, then `reconcile`)."""
    known_lost = lost.get(order.intent.client_id)
    if known_lost is not None:
        raise known_lost
    try:
        return broker.refresh(order) if order.exchange_id else broker.lookup(order)
    except OrderUnresolved as e:
        lost[order.intent.client_id] = e
        raise


def _orders_now(
    broker: LiveBroker,
    unsettled: Iterable[OrderState],
    differences: list[Difference],
    lost: dict[str, OrderUnresolved],
) -> list[tuple[OrderState, OrderState]]:
    """Each unsettled order as the exchange has it now (`_order_now`): the ones that changed, before and
    after."""
    changes = []
    for order in unsettled:
        try:
            now = _order_now(broker, order, lost)
        except OrderUnresolved as e:
            differences.append(Difference("order_lost", order.intent.client_id, str(e)))
            continue
        except ccxt.BaseError as e:
            differences.append(_unanswered(f"order {order.intent.client_id}", e))
            continue
        if now != order:
            changes.append((order, now))
            # a market order is settled by the run that sends it: one that filled here was never read by
            # its run, and without its plan (`recover_unread`) nothing says what it bought or sold for
            unread = order.intent.type == "market" and now.filled > order.filled
            differences.append(
                Difference(
                    "order_changed",
                    order.intent.client_id,
                    f"{order.intent.purpose} {order.intent.side} {order.intent.symbol}: {order.status} -> "
                    f"{now.status}, filled {order.filled} -> {now.filled}"
                    + (
                        ": its run never read the fill and no plan of it was journalled, so the position or "
                        "trade it made is not in the books (the balances say what moved)"
                        if unread
                        else ""
                    ),
                    explained=not unread,
                )
            )
    return changes


def _adopt_external(
    journal: OrderJournal,
    open_orders: list[dict[str, Any]],
    mine: list[OrderState],
    differences: list[Difference],
) -> list[OrderState]:
    """Open exchange orders the journal does not know, journalled as external."""
    exchange_ids = {o.exchange_id for o in mine if o.exchange_id}
    client_ids = {o.intent.client_id for o in mine}
    adopted = []
    for state in mine:  # adopted by an earlier run, still waiting for the operator
        if state.intent.purpose == "external" and state.note == AWAITING and not state.done:
            differences.append(
                Difference(
                    "external_order",
                    str(state.exchange_id),
                    f"{state.intent.side} {state.intent.amount} {state.intent.symbol} adopted as external, "
                    "awaiting the operator's word (triplegain reconcile --accept)",
                )
            )
    for order in open_orders:
        if str(order["id"]) in exchange_ids or order.get("clientOrderId") in client_ids:
            continue
        external = _external(order)
        journal.save(external, "adopted: open on the exchange, unknown to the journal")
        adopted.append(external)
        differences.append(
            Difference(
                "external_order",
                str(order["id"]),
                f"{order.get('side')} {order.get('amount')} {order.get('symbol')} {order.get('type')} "
                "open on the exchange, placed outside TripleGain: adopted as external",
            )
        )
    return adopted


def _external_fills(
    trades: list[dict[str, Any]], mine: list[OrderState], differences: list[Difference]
) -> None:
    """Fills since the last sync of orders the journal does not know."""
    exchange_ids = {o.exchange_id for o in mine if o.exchange_id}
    for trade in trades:
        if str(trade.get("order")) not in exchange_ids:
            differences.append(
                Difference(
                    "external_fill",
                    str(trade.get("id")),
                    f"{trade.get('side')} {trade.get('amount')} {trade.get('symbol')} at "
                    f"{trade.get('price')} of order {trade.get('order')}, unknown to the journal",
                    trade={k: str(trade.get(k)) for k in ("order", "symbol", "side", "amount", "price")},
                )
            )


def _protection_gaps(
    protections: list[Protection],
    updated: list[OrderState],
    open_ids: set[str],
    differences: list[Difference],
) -> None:
    """Protected positions whose stop-loss or take-profit is not open on the exchange: one difference a
    position, naming each of its orders missing."""
    now = {o.intent.client_id: o for o in updated}
    for protection in protections:
        missing = [
            order
            for order in protection.orders
            # neither open, nor done with its job (settling the pair cancels the other)
            if not (
                (current := now.get(order.intent.client_id, order)).status is OrderStatus.FILLED
                or current.exchange_id in open_ids
            )
        ]
        if missing:
            differences.append(
                Difference(
                    "protection_missing",
                    protection.position_id,
                    f"{_not_open(missing)}{UNPROTECTED}",
                )
            )


def _not_open(orders: list[OrderState]) -> str:
    """'its stop-loss (id) is not open on the exchange', or both of a pair."""
    named = " and ".join(f"its {o.intent.purpose} ({o.intent.client_id})" for o in orders)
    return f"{named} {'is' if len(orders) == 1 else 'are'} not open on the exchange"


def _settling(protections: list[Protection], updated: list[OrderState]) -> set[str]:
    """The positions one of whose protection orders filled: the run that settles them records the exit."""
    now = {o.intent.client_id: o for o in updated}
    return {
        p.position_id
        for p in protections
        if any(now.get(o.intent.client_id, o).status in FILLED for o in p.orders)
    }


def _unheld(
    positions: list[Position], settling: set[str], exchange: dict[str, Decimal], differences: list[Difference]
) -> None:
    """Open positions holding more of an asset than the exchange account does: sold outside TripleGain (by
    hand, or by another program). Trading on would manage positions that are not there, and their
    protection orders would sell what later positions hold."""
    held: dict[str, list[Position]] = {}
    for p in positions:
        if p.id not in settling:
            held.setdefault(split_symbol(p.symbol)[0], []).append(p)
    for asset, open_positions in sorted(held.items()):
        want, have = sum(p.size for p in open_positions), exchange.get(asset, Decimal(0))
        if want - have > BASE_TOLERANCE:
            differences.append(
                Difference(
                    "position_unheld",
                    asset,
                    f"open positions hold {want} {asset} ({', '.join(p.id for p in open_positions)}), the "
                    f"exchange account {have}: sold outside TripleGain? `triplegain reconcile --accept` "
                    "closes the newest of them until the rest is held, and cancels their protection",
                    held=have,
                    positions=tuple(p.id for p in open_positions),
                )
            )


def closed_outside(
    positions: list[Position],
    found: Reconciliation,
    prices: dict[str, Decimal],
    run_id: str,
    at: datetime,
    note: str,
    specs: Mapping[str, SymbolSpec],
) -> list[Execution]:
    """The operator's word on `position_unheld`: for each asset the exchange account holds less of than its
    open positions, the newest of them closed until the rest is held, each by a sale outside TripleGain
    (recorded under `run_id`) at the average price of the external sales of its symbol `found` lists (else
    its last price in `prices`, else its entry price), with no fee of ours (the exchange's balances,
    accepted, carry it). The last one, when part of it is still held, is reduced to that part (rounded
    down to the symbol's size step; closed whole when that is below its minimum order size): an
    `Execution` with the part sold closed and the rest in `reduced_positions`, whose protection the caller
    resizes."""
    unheld = [d for d in found.unexplained if d.kind == "position_unheld"]
    sales: dict[str, list[tuple[Decimal, Decimal]]] = {}
    for d in found.unexplained:
        if d.kind == "external_fill" and d.trade and d.trade.get("side") == "sell":
            sale = (Decimal(d.trade["amount"]), Decimal(d.trade["price"]))
            sales.setdefault(d.trade["symbol"], []).append(sale)
    executions = []
    for d in unheld:
        have = d.held or Decimal(0)
        mine = sorted((p for p in positions if p.id in d.positions), key=lambda p: p.opened_at)
        while mine and (excess := sum(p.size for p in mine) - have) > BASE_TOLERANCE:
            position = mine.pop()
            sold = position.size
            spec = specs.get(position.symbol)
            if spec is not None and excess < position.size:
                rest = round_size(position.size - excess, spec)
                if rest >= spec.min_order_size and rest > 0:
                    sold = position.size - rest
            sold_at = sales.get(position.symbol)
            price = (
                sum((a * px for a, px in sold_at), Decimal(0)) / sum((a for a, _ in sold_at), Decimal(0))
                if sold_at
                else prices.get(position.symbol) or position.entry_price
            )
            order_id = f"{position.id}-outside"
            order = sell_order(position, sold, order_id, run_id, price, at, status=OrderStatus.FILLED)
            fill = Fill(
                client_order_id=order_id,
                symbol=position.symbol,
                side=Side.SELL,
                price=price,
                size=sold,
                fee=Decimal(0),
                fee_asset=split_symbol(position.symbol)[1],
                slippage_pct=Decimal(0),
                filled_at=at,
            )
            if sold < position.size:
                part, rest_of_it = split_position(position, sold, order_id, fill, at, note)
                executions.append(
                    Execution(order=order, fill=fill, closed_positions=[part], reduced_positions=[rest_of_it])
                )
                break
            closed = closed_position(position, fill, position.size, at, note)
            executions.append(Execution(order=order, fill=fill, closed_positions=[closed]))
    return executions


def _unrecorded(
    balances: dict[str, Decimal], unrecorded: list[JournalledExecution], differences: list[Difference]
) -> dict[str, Decimal]:
    """Each journalled execution no run recorded, as a difference; the balances moved by their fills."""
    for done in unrecorded:
        e = done.execution
        if e.fill is None:
            continue
        balances = moved_by_fill(balances, e.fill, done.cost)
        effect = [
            *([f"opened position {e.opened_position.id}"] if e.opened_position else []),
            *(f"reduced position {p.id} to {p.size}" for p in e.reduced_positions),
            *(f"closed position {p.id} ({p.close_reason})" for p in e.closed_positions),
        ]
        differences.append(
            Difference(
                "unrecorded_execution",
                e.order.client_order_id,
                f"{e.fill.side} {e.fill.size} {e.fill.symbol} at {e.fill.price} filled in run {done.run_id}"
                f"{', which ' + ' and '.join(effect) if effect else ''}; the run never recorded it (killed "
                "or failed after the fill): triplegain reconcile --accept records it",
            )
        )
    return balances


def _balance_gaps(
    expected: dict[str, Decimal], exchange: dict[str, Decimal], differences: list[Difference]
) -> None:
    """Assets whose exchange balance differs from the expected one by more than rounding."""
    for asset in sorted(set(expected) | set(exchange)):
        want, have = expected.get(asset, Decimal(0)), exchange.get(asset, Decimal(0))
        tolerance = QUOTE_TOLERANCE if asset in ("USDT", "USD", "EUR", "USDC") else BASE_TOLERANCE
        if abs(want - have) > tolerance:
            differences.append(
                Difference("balance", asset, f"the database expects {want}, the exchange holds {have}")
            )


def _ask(call: Any, what: str, differences: list[Difference]) -> Any:
    """The exchange's answer, or None with a difference saying it did not answer (never 'nothing')."""
    try:
        return call()
    except ccxt.BaseError as e:
        differences.append(_unanswered(what, e))
        return None


def _unanswered(what: str, error: Exception) -> Difference:
    return Difference(
        "exchange_unanswered",
        what,
        f"the exchange did not answer ({type(error).__name__}): unknown, not empty",
    )


def _moved(balances: dict[str, Decimal], changes: list[tuple[OrderState, OrderState]]) -> dict[str, Decimal]:
    """The expected balances moved by the fills our orders got since they were last stored."""
    moved = dict(balances)
    for before, after in changes:
        filled = after.filled - before.filled
        if filled == 0 and after.fee == before.fee:
            continue
        base, quote = split_symbol(after.intent.symbol)
        price = after.average_price or Decimal(0)
        cost = after.filled * price - before.filled * (before.average_price or price)
        sign = 1 if after.intent.side is Side.BUY else -1
        fee = after.fee - before.fee
        in_base = (after.fee_asset or quote) == base  # the fee taken from the asset it was charged in
        moved[base] = moved.get(base, Decimal(0)) + sign * filled - (fee if in_base else Decimal(0))
        moved[quote] = moved.get(quote, Decimal(0)) - sign * cost - (Decimal(0) if in_base else fee)
    return moved


def _external(order: dict[str, Any]) -> OrderState:
    """An exchange order placed outside TripleGain, journalled as external under a client id derived from
    its exchange id."""
    exchange_id = str(order["id"])
    digest = hashlib.sha256(f"external|{exchange_id}".encode()).hexdigest()
    raw_type = str(order.get("type") or "market")
    kind = raw_type if raw_type in ("market", "limit") else "market"
    trigger = order.get("triggerPrice")
    if trigger:
        kind = "stop-loss" if order.get("stopLossPrice") or order.get("side") == "sell" else "take-profit"
    price = order.get("price") or trigger
    intent = OrderIntent(
        client_id=str(uuid.UUID(hex=digest[:32])),
        cycle_id="external",
        symbol=str(order.get("symbol")),
        side=Side(str(order.get("side"))),
        type=kind,
        amount=Decimal(str(order.get("amount"))),
        purpose="external",
        price=Decimal(str(price)) if price else None,
        created_at=datetime.now(UTC),
    )
    filled = Decimal(str(order.get("filled") or 0))
    status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    fee = order.get("fee") or {}
    return OrderState(
        intent,
        status=status,
        exchange_id=exchange_id,
        filled=filled,
        average_price=Decimal(str(order["average"])) if order.get("average") else None,
        fee=Decimal(str(fee.get("cost") or 0)),
        fee_asset=fee.get("currency"),
        note=AWAITING,
    )


def accept_external(
    journal: OrderJournal,
    orders: Iterable[OrderState],
    by: str,
    reason: str,
    fills: Iterable[Difference] = (),
) -> list[OrderState]:
    """The operator's word on adopted external orders and on external fills: both stay journalled as
    external orders (so their fills are known from now on), no longer a difference. Returns those
    accepted."""
    accepted = []
    for difference in fills:
        if difference.trade is None:
            continue
        t = difference.trade
        order = {"id": t["order"], "symbol": t["symbol"], "side": t["side"], "amount": t["amount"]}
        state = replace(
            _external({**order, "type": "market"}),
            status=OrderStatus.FILLED,
            filled=Decimal(t["amount"]),
            average_price=Decimal(t["price"]),
            note=None,
        )
        if journal.get(state.intent.client_id) is None:
            journal.save(state, f"external fill accepted by {by}: {reason}")
            accepted.append(state)
    for state in orders:
        if state.intent.purpose == "external" and state.note == AWAITING:
            done = replace(state, note=None)
            journal.save(done, f"accepted by {by}: {reason}")
            accepted.append(done)
    return accepted


def recovery_report(
    run_id: str,
    journalled: list[JournalledExecution],
    before: Portfolio,
    balances: dict[str, Decimal],
    note: str,
    at: datetime,
    status: CycleStatus = CycleStatus.FAILED,
) -> CycleReport:
    """The report stored for a run that filled orders and was killed before it recorded them: what its
    journalled executions did (by symbol), the account before (`before`, at its last prices) and after
    (the exchange's `balances`), status failed, and `note` saying who recorded it and why. A later run with
    the same id reads it back instead of trading again."""
    executions = [j.execution for j in journalled]
    prices = dict(before.prices)
    for e in executions:
        if e.fill is not None:
            prices[e.fill.symbol] = e.fill.price
    after = Portfolio(
        balances=balances, prices=prices, positions=positions_after(before.positions, executions), as_of=at
    )
    outcomes: dict[str, SymbolOutcome] = {}
    for e in executions:
        current = outcomes.get(e.order.symbol) or SymbolOutcome(symbol=e.order.symbol)
        if e.closed_positions and not e.opened_position:
            current = current.model_copy(update={"exits": [*current.exits, e]})
        elif current.execution is None:
            current = current.model_copy(update={"execution": e})
        else:
            current = current.model_copy(update={"allocation_trades": [*current.allocation_trades, e]})
        outcomes[e.order.symbol] = current
    return CycleReport(
        cycle_id=run_id,
        timestamp=min(j.execution.fill.filled_at if j.execution.fill else at for j in journalled),
        started_at=min(j.journalled_at for j in journalled),
        finished_at=at,
        status=status,
        mode="live",
        decided_by="recovery",
        symbols=list(outcomes.values()),
        portfolio=after,
        starting_equity=before.equity,
        notes=[note],
    )


def finish_protections(
    desk: ProtectionDesk, unfinished: Iterable[Unfinished], found: Reconciliation
) -> Reconciliation:
    """`found` with the protection a stopped run never finished placing placed now (`protection_placed`,
    explained: the position is held, only its protection was missing). Not placed, and URGENT
    (`protection_missing`), when the exchange left a question unanswered or the position's asset balance
    is in question (a balance difference, or less held than the open positions: it may no longer be held),
    or when placing fails."""
    unanswered = any(d.kind == "exchange_unanswered" for d in found.differences)
    gaps = {d.subject: d for d in found.differences if d.kind == "protection_missing"}
    # An asset whose balance differs, or that the open positions hold more of than the account does (sold
    # by hand, or by a run killed mid-way through a reduce), may not be held: its pair would sell what is
    # not there. The operator's word (`--accept`) sizes the position to what is held, and its pair with it.
    in_question = {d.subject for d in found.unexplained if d.kind in ("balance", "position_unheld")}
    added = []
    for u in unfinished:
        base, _ = split_symbol(u.position.symbol)
        never = u.why
        problem = None
        if unanswered or base in in_question:
            problem = f"not placed now: the exchange's {base} balance is in question"
        else:
            try:
                finish_protection(desk, u)
            except (ProtectionFailed, ValueError, ccxt.BaseError) as e:
                problem = f"placing it now failed: {str(e)[:200]}"
        if problem is None:
            placed = Difference("protection_placed", u.position.id, f"{never}: placed now", explained=True)
            added.append(placed)
        else:
            # one URGENT line for the position: what the cancelled pair's gap said is folded into it
            gap = gaps.get(u.position.id)
            also = f" ({gap.detail.removesuffix(UNPROTECTED)})" if gap else ""
            added.append(
                Difference(
                    "protection_missing",
                    u.position.id,
                    f"{never}{also}; {problem}{UNPROTECTED}",
                )
            )
    replaced = {d.subject for d in added}  # placed now, or missing with the reason folded in
    kept = [d for d in found.differences if not (d.kind == "protection_missing" and d.subject in replaced)]
    return replace(found, differences=[*kept, *added])
