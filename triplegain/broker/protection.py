"""A live position's protection on the exchange: its stop-loss and take-profit orders (issue 16, part 3).

After an entry fills, a stop-loss and a take-profit rest on the exchange for the position's size, so the
position stays protected while no run is going (a process that is down cannot sell). Then:

- one filling cancels the other (`settle`), and its fill, with its fee, is recorded as the position's exit;
  if both filled (the exchange raced the cancel), that is said loudly: more was sold than was held;
- a partial close resizes the protection to what is left (`resize`) instead of dropping it: on a spot
  account the sell orders reserve the asset, so the old pair is cancelled before the new pair is placed;
  each generation has its own client ids, derived from the position and the generation, so a retried run
  places the same orders again, never a second pair;
- a close by the system cancels what it orphans (`release`);
- a protection order that cannot be placed raises `ProtectionFailed` with an URGENT message: the caller
  closes the position unless the operator has said otherwise (`execution.close_unprotected`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from triplegain.broker.live import (
    FILLED,
    LiveBroker,
    OrderIntent,
    OrderJournal,
    OrderState,
    OrderUnresolved,
    fill_from,
    live_client_id,
)
from triplegain.models.enums import OrderStatus, Side
from triplegain.models.trading import Fill, Position

CANCEL_REQUESTED = "cancel requested by TripleGain"  # a protection order's note once a run cancels it


@dataclass(frozen=True)
class Protection:
    """A position's stop-loss and take-profit orders on the exchange, of one generation."""

    position_id: str  # the entry order's client id
    cycle_id: str
    symbol: str
    size: Decimal
    stop_price: Decimal
    take_price: Decimal
    stop: OrderState
    take: OrderState
    generation: int = 0

    @property
    def orders(self) -> tuple[OrderState, OrderState]:
        """The stop-loss and the take-profit."""
        return self.stop, self.take


@dataclass(frozen=True)
class ProtectionOutcome:
    """What `settle` found: still protected, or closed by one of the orders (its exit fills)."""

    protection: Protection
    closed_by: str | None = None  # stop_loss | take_profit
    fills: tuple[Fill, ...] = ()
    urgent: tuple[str, ...] = ()


class ProtectionFailed(RuntimeError):
    """A protection order could not be placed: the position is unprotected on the exchange."""

    def __init__(self, position_id: str, symbol: str, what: str, placed: tuple[OrderState, ...]) -> None:
        super().__init__(
            f"URGENT: position {position_id} ({symbol}) is not protected on the exchange: {what}; close it "
            "unless the operator decides otherwise (execution.close_unprotected)"
        )
        self.position_id, self.symbol, self.placed = position_id, symbol, placed


class ProtectionDesk:
    """Places, follows, resizes and releases protection orders through a `LiveBroker`."""

    def __init__(self, broker: LiveBroker) -> None:
        self.broker = broker

    def protect(
        self,
        position_id: str,
        cycle_id: str,
        symbol: str,
        size: Decimal,
        stop_price: Decimal,
        take_price: Decimal,
        generation: int = 0,
    ) -> Protection:
        """Place the stop-loss, then the take-profit, for `size`; ProtectionFailed when either cannot be
        placed (the orders placed so far are in the exception, for the close to cancel)."""
        if not 0 < stop_price < take_price:
            raise ValueError(
                f"position {position_id}: the stop ({stop_price}) must lie below the take-profit "
                f"({take_price}), both positive"
            )
        tick = self.broker.price_tick(symbol)
        if tick is not None:  # on the exchange's grid, each rounded towards the price: never more risk
            stop_price = (stop_price / tick).to_integral_value(ROUND_CEILING) * tick
            take_price = (take_price / tick).to_integral_value(ROUND_FLOOR) * tick
        placed: list[OrderState] = []
        for purpose, kind, price in (
            ("stop_loss", "stop-loss", stop_price),
            ("take_profit", "take-profit", take_price),
        ):
            intent = OrderIntent(
                client_id=live_client_id(position_id, purpose, str(generation)),
                cycle_id=cycle_id,
                symbol=symbol,
                side=Side.SELL,
                type=kind,
                amount=size,
                purpose=purpose,
                price=price,
            )
            try:
                state = self.broker.submit(intent)
            except OrderUnresolved as e:
                raise ProtectionFailed(
                    position_id, symbol, f"its {purpose} was not confirmed ({e})", tuple(placed)
                ) from e
            if state.status not in (OrderStatus.OPEN, *FILLED):
                raise ProtectionFailed(
                    position_id, symbol, f"its {purpose} was {state.status}: {state.note}", tuple(placed)
                )
            placed.append(state)
        stop, take = placed
        return Protection(position_id, cycle_id, symbol, size, stop_price, take_price, stop, take, generation)

    def settle(self, protection: Protection) -> ProtectionOutcome:
        """Ask the exchange about both orders; when one filled, cancel the other and return the exit fills
        (with their fees). Both filled is reported as URGENT (more sold than held)."""
        stop = self.broker.refresh(protection.stop)
        take = self.broker.refresh(protection.take)
        current = replace(protection, stop=stop, take=take)
        hit = [(name, s) for name, s in (("stop_loss", stop), ("take_profit", take)) if s.status in FILLED]
        if not hit:
            return ProtectionOutcome(current)
        if len(hit) == 1:
            if hit[0][0] == "stop_loss":
                current = replace(current, take=self.broker.cancel(take))
            else:
                current = replace(current, stop=self.broker.cancel(stop))
            pairs = (("stop_loss", current.stop), ("take_profit", current.take))
            hit = [(n, s) for n, s in pairs if s.status in FILLED]
        urgent: tuple[str, ...] = ()
        if len(hit) == 2:
            urgent = (
                f"URGENT: both protection orders of position {protection.position_id} ({protection.symbol}) "
                "filled: more was sold than the position held; reconcile the account",
            )
        fills = tuple(_fill(s) for _, s in hit)
        return ProtectionOutcome(current, closed_by=hit[0][0], fills=fills, urgent=urgent)

    def resize(
        self, protection: Protection, size: Decimal, stop_price: Decimal | None = None
    ) -> ProtectionOutcome:
        """The protection for what is left after a partial close (or with its stop-loss trailed up to
        `stop_price`): the old pair cancelled, a new pair of the next generation placed for `size` (no new
        pair when nothing is left). If one of the old orders filled meanwhile, no new pair is placed and the
        outcome says so, with its fills, for the caller to record before anything else."""
        released = self.release(protection)
        filled = [
            (n, s)
            for n, s in (("stop_loss", released.stop), ("take_profit", released.take))
            if s.status in FILLED
        ]
        if filled:
            return ProtectionOutcome(
                released, closed_by=filled[0][0], fills=tuple(_fill(s) for _, s in filled)
            )
        if size <= 0:
            return ProtectionOutcome(released)
        renewed = self.protect(
            protection.position_id,
            protection.cycle_id,
            protection.symbol,
            size,
            stop_price or protection.stop_price,
            protection.take_price,
            protection.generation + 1,
        )
        return ProtectionOutcome(renewed)

    def release(self, protection: Protection) -> Protection:
        """Cancel both orders (the position is being closed, or its protection replaced): nothing orphaned
        stays on the exchange. An order that filled meanwhile is returned as filled, for the caller to
        record. Each order is journalled as ours to cancel before it is cancelled (`CANCEL_REQUESTED`), so
        that a run stopped before it placed what was to follow is told from a cancel by hand."""
        return replace(protection, stop=self._cancel(protection.stop), take=self._cancel(protection.take))

    def _cancel(self, state: OrderState) -> OrderState:
        if not state.done:
            state = replace(state, note=CANCEL_REQUESTED)
            self.broker.journal.save(state, CANCEL_REQUESTED)
        return self.broker.cancel(state)


def _fill(state: OrderState) -> Fill:
    """An exchange-side fill of a protection order, against its trigger price."""
    trigger = state.intent.price
    assert trigger is not None, "a stop-loss or take-profit intent always has its trigger price"
    return fill_from(state, state.intent.client_id, trigger, datetime.now(UTC))


def recover_protections(journal: OrderJournal, positions: list[Position]) -> dict[str, Protection]:
    """Each open position's protection as the journal holds it: the newest generation whose orders were
    journalled (their client ids derive from the position and the generation), so a new process carries on
    where the last one stopped. A position without a whole generation is left out:
    `unfinished_protections` finds it, and reconciliation places what it lacks (or says URGENT)."""
    found: dict[str, Protection] = {}
    for position in positions:
        latest = None
        generation = 0
        while (pair := _journalled_pair(journal, position, generation)) is not None:
            latest, generation = pair, generation + 1
        if latest is not None:
            found[position.id] = latest
    return found


def _journalled_pair(journal: OrderJournal, position: Position, generation: int) -> Protection | None:
    """The position's stop-loss and take-profit of `generation` as the journal holds them, when it holds
    both."""
    stop = journal.get(live_client_id(position.id, "stop_loss", str(generation)))
    take = journal.get(live_client_id(position.id, "take_profit", str(generation)))
    if stop is None or take is None:
        return None
    return Protection(
        position.id,
        stop.intent.cycle_id,
        position.symbol,
        stop.intent.amount,
        stop.intent.price or Decimal(0),
        take.intent.price or Decimal(0),
        stop,
        take,
        generation,
    )


@dataclass(frozen=True)
class Unfinished:
    """A position whose protection a run was placing when it stopped: after the entry filled and before
    its stop-loss (nothing journalled), or between the stop-loss and the take-profit (half a generation)."""

    position: Position
    generation: int
    cycle_id: str  # the run that was placing it (the position's own run when nothing was journalled)
    stop: OrderState | None
    take: OrderState | None
    # the pair a run cancelled (to move its stop, resize or close the position) and stopped before it
    # placed what was to follow: the new pair takes its levels
    cancelled: Protection | None = None

    @property
    def missing(self) -> str:
        """What was never placed, e.g. 'take_profit' or 'stop_loss and take_profit'."""
        return " and ".join(p for p, s in (("stop_loss", self.stop), ("take_profit", self.take)) if s is None)

    @property
    def why(self) -> str:
        """What happened, in a sentence."""
        if self.cancelled is not None:
            return (
                f"its generation-{self.cancelled.generation} pair was cancelled by a run that stopped before "
                "placing what was to follow (moving its stop, resizing or closing it)"
            )
        return f"its {self.missing} was never placed (a run stopped before placing it)"


def unfinished_protections(journal: OrderJournal, positions: list[Position]) -> list[Unfinished]:
    """The open positions with stop and take-profit levels whose newest protection generation the journal
    does not hold whole: `recover_protections` leaves them out, so nothing else would notice."""
    found = []
    for position in positions:
        if position.stop_loss is None or position.take_profit is None:
            continue
        generation = 0
        while True:
            stop = journal.get(live_client_id(position.id, "stop_loss", str(generation)))
            take = journal.get(live_client_id(position.id, "take_profit", str(generation)))
            if stop is not None and take is not None:
                generation += 1
                continue
            if stop is None and take is None and generation > 0:
                previous = _cancelled_by_a_run(journal, position, generation - 1)
                if previous is not None:
                    found.append(
                        Unfinished(position, generation, previous.cycle_id, None, None, cancelled=previous)
                    )
                break  # the newest generation is whole
            placed = stop or take
            cycle_id = placed.intent.cycle_id if placed is not None else position.cycle_id
            found.append(Unfinished(position, generation, cycle_id, stop, take))
            break
    return found


def _cancelled_by_a_run(journal: OrderJournal, position: Position, generation: int) -> Protection | None:
    """The position's pair of `generation` when both orders are done, neither filled, and a run of ours
    asked to cancel it (`CANCEL_REQUESTED`); else None (still open, an exit, or cancelled by hand)."""
    pair = _journalled_pair(journal, position, generation)
    if pair is None or not all(s.done and s.status not in FILLED and s.filled == 0 for s in pair.orders):
        return None
    return pair if CANCEL_REQUESTED in (pair.stop.note, pair.take.note) else None


def finish_protection(desk: ProtectionDesk, unfinished: Unfinished) -> Protection:
    """Place what `unfinished` lacks, under the client ids the stopped run would have used: the half it
    placed is found in the journal and not sent again. ProtectionFailed when it cannot be placed."""
    position, stop, take = unfinished.position, unfinished.stop, unfinished.take
    placed = stop or take
    if unfinished.cancelled is not None:  # for what the position holds now, at the cancelled pair's levels
        old = unfinished.cancelled
        return desk.protect(
            position.id,
            unfinished.cycle_id,
            position.symbol,
            position.size,
            old.stop_price,
            old.take_price,
            unfinished.generation,
        )
    if position.stop_loss is None or position.take_profit is None:
        raise ValueError(f"position {position.id} has no stop-loss and take-profit levels to protect it with")
    return desk.protect(
        position.id,
        unfinished.cycle_id,
        position.symbol,
        placed.intent.amount if placed is not None else position.size,
        (stop.intent.price if stop is not None else None) or position.stop_loss,
        (take.intent.price if take is not None else None) or position.take_profit,
        unfinished.generation,
    )
