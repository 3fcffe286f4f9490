"""A live account's pieces, built from the settings: the exchange, the journal, the brokers, and the
reconciliation every run that can trade makes first (issue 16). Callers check the gate
(`triplegain.live_gate.authorize_live`) before they build any of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import (
    FILLED,
    Backoff,
    CallBudget,
    JournalledExecution,
    LiveBroker,
    OrderUnresolved,
)
from triplegain.broker.orders import positions_after
from triplegain.broker.protection import (
    Protection,
    ProtectionDesk,
    recover_protections,
    unfinished_protections,
)
from triplegain.broker.reconcile import (
    LocalBook,
    Reconciliation,
    accept_external,
    closed_outside,
    finish_protections,
    reconcile,
    recover_unread,
    recovery_report,
)
from triplegain.cycle_types import AccountState
from triplegain.live_gate import ExchangeKeys
from triplegain.market.exchange import ccxt_exchange
from triplegain.models.cycle import Execution
from triplegain.models.enums import CycleStatus, OrderStatus
from triplegain.models.trading import Portfolio
from triplegain.settings import Settings
from triplegain.storage import engine_for, unit_of_work
from triplegain.storage.accounts import accept_balances
from triplegain.storage.cycles import record_recovered_run
from triplegain.storage.live_orders import SqlOrderJournal
from triplegain.storage.positions import latest_prices


def exchange_client(settings: Settings, keys: ExchangeKeys) -> Any:
    """The ccxt exchange of `execution.exchange` with the account's keys, its limiter on."""
    s = settings.execution
    options: dict[str, Any] = {
        "apiKey": keys.api_key.get_secret_value(),
        "secret": keys.secret.get_secret_value(),
        "timeout": int(s.timeout_seconds * 1000),
    }
    if s.rate_limit_ms is not None:
        options["rateLimit"] = s.rate_limit_ms
    return ccxt_exchange(s.exchange, options, s.api_url, "execution.exchange")


def live_broker(settings: Settings, keys: ExchangeKeys, journal: SqlOrderJournal) -> LiveBroker:
    """Orders on the exchange, journalled in the project database, within the configured budgets."""
    s = settings.execution
    return LiveBroker(
        exchange_client(settings, keys),
        journal,
        budget=CallBudget(s.calls_per_minute, s.orders_per_minute),
        lookup=Backoff(first=1.0, cap=8.0, attempts=s.lookup_attempts),
    )


def exchange_broker(settings: Settings, keys: ExchangeKeys, account: AccountState) -> ExchangeBroker:
    """The broker a live run's coordination trades on: the account's balances, its positions' protection
    as the journal holds it."""
    journal = SqlOrderJournal(engine_for(settings))
    live = live_broker(settings, keys, journal)
    protections = recover_protections(journal, list(account.positions))
    return ExchangeBroker(
        live,
        account.balances,
        settings.broker,
        settings.market.symbol_specs,
        protections,
        close_unprotected=settings.execution.close_unprotected,
    )


def reconcile_account(settings: Settings, keys: ExchangeKeys, account: AccountState) -> Reconciliation:
    """The account against the exchange before a run trades: the journal's unsettled orders, the open
    orders, the fills since the account was last settled (an hour of margin), the protection, the
    executions no run recorded, the balances."""
    journal = SqlOrderJournal(engine_for(settings))
    live = live_broker(settings, keys, journal)
    since = account.marked_at - timedelta(hours=1) if account.marked_at else None
    lost: dict[str, OrderUnresolved] = {}  # looked up once: the backoff is not waited twice
    recover_unread(live, journal, journal.unsettled(), lost)  # a killed run's fills, built from their plans
    unrecorded = journal.unrecorded_executions()
    # the positions as they will be once what no run recorded is: those it closed need no protection
    positions = positions_after(account.positions, [j.execution for j in unrecorded])
    book = LocalBook(
        balances=account.balances,
        protections=list(recover_protections(journal, positions).values()),
        last_sync_ms=int(since.timestamp() * 1000) if since else None,
        unrecorded=unrecorded,
        positions=positions,
    )
    found = reconcile(live, journal, journal.unsettled(), journal.orders(), book, lost)
    return finish_protections(ProtectionDesk(live), unfinished_protections(journal, positions), found)


def protect_again(
    settings: Settings, keys: ExchangeKeys, account: AccountState, by: str, reason: str
) -> list[str]:
    """The operator's word on missing protection (`triplegain reconcile --protect`): each open position
    whose stop-loss or take-profit is no longer open on the exchange (cancelled by hand, expired, rejected)
    gets a new pair, the next generation, at its levels and for its size, once what is left of the old
    pair is cancelled. A position one of whose orders filled is left for the next run, which records the
    exit. ProtectionFailed (URGENT) when the new pair cannot be placed. Returns what was done."""
    journal = SqlOrderJournal(engine_for(settings))
    live = live_broker(settings, keys, journal)
    desk = ProtectionDesk(live)
    positions = positions_after(account.positions, [j.execution for j in journal.unrecorded_executions()])
    done = []
    for protection in recover_protections(journal, positions).values():
        current = replace(protection, stop=live.refresh(protection.stop), take=live.refresh(protection.take))
        if all(o.status is OrderStatus.OPEN for o in current.orders):
            continue
        outcome = None
        if not any(o.status in FILLED for o in current.orders):
            outcome = desk.resize(current, current.size)
        if outcome is None or outcome.closed_by is not None:
            done.append(
                f"position {protection.position_id} not protected again: one of its orders filled (the next "
                "run records the exit)"
            )
            continue
        pair = _placed_on_word(journal, outcome.protection, by, reason)
        done.append(f"position {protection.position_id} ({protection.symbol}) protected again: {pair}")
    return done


def accept_reconciliation(
    settings: Settings,
    keys: ExchangeKeys,
    result: Reconciliation,
    account: AccountState,
    by: str,
    reason: str,
) -> list[str]:
    """The operator's word on a reconciliation's differences (`triplegain reconcile --accept`): adopted
    external orders accepted, lost orders declared never placed, the executions of a run killed after its
    orders filled recorded (its orders, fills and positions, as the broker journalled them), positions sold
    outside TripleGain closed (their protection cancelled on the exchange first), the account's balances
    set to the exchange's. A missing protection cannot be accepted (`protect_again`) unless its position
    is being closed, nor can an answer the exchange never gave. Returns what was done, one line each."""
    engine = engine_for(settings)
    journal = SqlOrderJournal(engine)
    unrecorded = {d.subject for d in result.unexplained if d.kind == "unrecorded_execution"}
    recovered = [
        j for j in journal.unrecorded_executions() if j.execution.order.client_order_id in unrecorded
    ]
    now = datetime.now(UTC)
    # as of the market time the account was last moved, or of the recovered runs' fills: an operator's word
    # is not a run, and must not move the account's clock past its runs
    times = [account.marked_at, *(j.execution.fill.filled_at for j in recovered if j.execution.fill)]
    as_of = max((t for t in times if t is not None), default=now)
    run_id = f"outside-{now:%Y%m%dT%H%M%SZ}"  # where closes of positions sold outside are recorded
    closes = _closed_outside(settings, account, recovered, result, run_id, as_of, by, reason)
    closing = {p.id for e in closes for p in [*e.closed_positions, *e.reduced_positions]}
    unacceptable = [
        d
        for d in result.unexplained
        if d.kind == "exchange_unanswered" or (d.kind == "protection_missing" and d.subject not in closing)
    ]
    if unacceptable:
        raise ValueError(
            "cannot be accepted, act on it first (a missing protection: `triplegain reconcile --protect "
            "--reason ...` places a new pair; an unanswered call: ask again): "
            + "; ".join(str(d) for d in unacceptable)
        )
    done = _release(settings, keys, journal, closes, by, reason)
    fills = [d for d in result.unexplained if d.kind == "external_fill"]
    done += [
        f"external order {s.exchange_id} accepted"
        for s in accept_external(journal, journal.orders(), by, reason, fills)
    ]
    for difference in result.unexplained:
        state = journal.get(difference.subject) if difference.kind == "order_lost" else None
        if state is not None and not state.done:
            note = f"declared never placed by {by}: {reason}"
            journal.save(replace(state, status=OrderStatus.ERROR, note=note), note)
            done.append(f"order {difference.subject} declared never placed")
    if recovered or closes or any(d.kind in ("balance", "external_fill") for d in result.unexplained):
        with unit_of_work(engine) as session:
            if recovered:
                account, lines = _record_recovered(session, account, recovered, result, by, reason, now)
                done += lines
            if closes:
                account = _record_closed(session, account, closes, result, by, reason, as_of)
                done += [
                    f"position {p.id} ({p.symbol}, {p.size}) closed outside TripleGain at {p.exit_price}"
                    for e in closes
                    if not e.reduced_positions
                    for p in e.closed_positions
                ]
                done += [
                    f"position {p.id} ({p.symbol}) reduced to {p.size}: {e.order.size} sold outside "
                    f"TripleGain at {e.closed_positions[0].exit_price}"
                    for e in closes
                    for p in e.reduced_positions
                ]
            accept_balances(session, account, result.exchange_balances, as_of)
        for d in result.unexplained:
            kept = sum((p.size for p in account.positions if p.id in d.positions), Decimal(0))
            if d.kind == "position_unheld" and (d.held or 0) - kept > 0:
                done.append(
                    f"{(d.held or 0) - kept} {d.subject} stays in the account in no position: no stop-loss "
                    "or take-profit guards it, and no run will sell it"
                )
        done.append(
            "balances set to the exchange's: "
            + ", ".join(f"{a} {v}" for a, v in sorted(result.exchange_balances.items()))
        )
    return done


def _closed_outside(
    settings: Settings,
    account: AccountState,
    recovered: list[JournalledExecution],
    result: Reconciliation,
    run_id: str,
    at: datetime,
    by: str,
    reason: str,
) -> list[Execution]:
    """The positions `result` found unheld, closed or reduced by a sale outside TripleGain
    (`closed_outside`)."""
    if not any(d.kind == "position_unheld" for d in result.unexplained):
        return []
    with unit_of_work(engine_for(settings)) as session:
        prices = latest_prices(session)
    positions = positions_after(account.positions, [j.execution for j in recovered])
    note = f"closed outside TripleGain, recorded by {by}: {reason}"
    return closed_outside(positions, result, prices, run_id, at, note, settings.market.symbol_specs)


def _release(
    settings: Settings,
    keys: ExchangeKeys,
    journal: SqlOrderJournal,
    closes: list[Execution],
    by: str,
    reason: str,
) -> list[str]:
    """On the exchange, the protection of positions sold outside TripleGain: cancelled for those closed
    (left resting, their orders would sell what later positions hold), a new pair for what is left of one
    reduced. ValueError when one of the old orders filled meanwhile (reconcile again)."""
    if not closes:
        return []
    desk = ProtectionDesk(live_broker(settings, keys, journal))
    reduced = {p.id: p for e in closes for p in e.reduced_positions}
    closed = [e.closed_positions[0] for e in closes if not e.reduced_positions]
    done = []
    for position_id, protection in recover_protections(journal, [*closed, *reduced.values()]).items():
        rest = reduced.get(position_id)
        outcome = desk.resize(protection, rest.size if rest is not None else Decimal(0))  # 0: cancelled only
        if outcome.closed_by is not None:
            raise ValueError(
                f"position {position_id}: its {outcome.closed_by} filled while its protection was being "
                "changed: reconcile again"
            )
        if rest is None:
            done.append(f"protection of position {position_id} cancelled on the exchange")
            continue
        pair = _placed_on_word(journal, outcome.protection, by, reason)
        done.append(f"protection of position {position_id} resized on the exchange: {pair}")
    return done


def _placed_on_word(journal: SqlOrderJournal, renewed: Protection, by: str, reason: str) -> str:
    """A pair placed on the operator's word: its orders' logs say who asked and why. Described, for the
    operator."""
    for order in renewed.orders:
        journal.save(order, f"placed on the word of {by}: {reason}")
    return (
        f"stop-loss {renewed.stop_price}, take-profit {renewed.take_price}, for {renewed.size} "
        f"(generation {renewed.generation})"
    )


def _record_closed(
    session: Session,
    account: AccountState,
    closes: list[Execution],
    result: Reconciliation,
    by: str,
    reason: str,
    at: datetime,
) -> AccountState:
    """The closes recorded as one run of the operator's (`outside-<wall-clock time>`); the account after
    them."""
    prices = latest_prices(session)
    before = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at)
    run_id = closes[0].order.cycle_id
    note = f"positions sold outside TripleGain, closed on the word of {by}: {reason}"
    journalled = [JournalledExecution(run_id, e, Decimal(0)) for e in closes]
    report = recovery_report(
        run_id, journalled, before, result.exchange_balances, note, at, status=CycleStatus.COMPLETED
    )
    record_recovered_run(session, report, closes)
    return replace(account, positions=positions_after(account.positions, closes))


def _record_recovered(
    session: Session,
    account: AccountState,
    recovered: list[JournalledExecution],
    result: Reconciliation,
    by: str,
    reason: str,
    at: datetime,
) -> tuple[AccountState, list[str]]:
    """Each killed run's journalled executions recorded under its id (`storage.cycles.record_recovered_run`);
    the account as it is after them. Returns it, and what was recorded, a line each."""
    prices = latest_prices(session)
    runs: dict[str, list[JournalledExecution]] = {}
    for j in recovered:
        runs.setdefault(j.run_id, []).append(j)
    lines = []
    for run_id, journalled in runs.items():
        before = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at)
        note = f"recorded by {by} after the run was killed before it recorded its filled orders: {reason}"
        report = recovery_report(run_id, journalled, before, result.exchange_balances, note, at)
        executions = [j.execution for j in journalled]
        record_recovered_run(session, report, executions)
        account = replace(account, positions=positions_after(account.positions, executions))
        prices = dict(report.portfolio.prices)
        lines += [
            f"order {e.order.client_order_id} of run {run_id} recorded ({e.order.side} {e.order.size} "
            f"{e.order.symbol})"
            for e in executions
        ]
    return account, lines
