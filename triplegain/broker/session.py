"""A live account's pieces, built from the settings: the exchange, the journal, the brokers, and the
reconciliation every run that can trade makes first (issue 16). Callers check the gate
(`triplegain.live_gate.authorize_live`) before they build any of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import Backoff, CallBudget, LiveBroker
from triplegain.broker.protection import recover_protections
from triplegain.broker.reconcile import LocalBook, Reconciliation, accept_external, reconcile
from triplegain.cycle_types import AccountState
from triplegain.live_gate import ExchangeKeys
from triplegain.market.exchange import ccxt_exchange
from triplegain.models.enums import OrderStatus
from triplegain.settings import Settings
from triplegain.storage import engine_for, unit_of_work
from triplegain.storage.accounts import accept_balances
from triplegain.storage.live_orders import SqlOrderJournal


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
    balances."""
    journal = SqlOrderJournal(engine_for(settings))
    live = live_broker(settings, keys, journal)
    since = account.marked_at - timedelta(hours=1) if account.marked_at else None
    book = LocalBook(
        balances=account.balances,
        protections=list(recover_protections(journal, list(account.positions)).values()),
        last_sync_ms=int(since.timestamp() * 1000) if since else None,
    )
    return reconcile(live, journal, journal.unsettled(), journal.orders(), book)


def accept_reconciliation(
    settings: Settings, result: Reconciliation, account: AccountState, by: str, reason: str
) -> list[str]:
    """The operator's word on a reconciliation's differences (`triplegain reconcile --accept`): adopted
    external orders accepted, lost orders declared never placed, the account's balances set to the
    exchange's. A missing protection cannot be accepted (re-protect or close the position), nor can an
    answer the exchange never gave. Returns what was done, one line each."""
    unacceptable = [d for d in result.unexplained if d.kind in ("protection_missing", "exchange_unanswered")]
    if unacceptable:
        raise ValueError("cannot be accepted, act on it first: " + "; ".join(str(d) for d in unacceptable))
    engine = engine_for(settings)
    journal = SqlOrderJournal(engine)
    fills = [d for d in result.unexplained if d.kind == "external_fill"]
    done = [
        f"external order {s.exchange_id} accepted"
        for s in accept_external(journal, journal.orders(), by, reason, fills)
    ]
    for difference in result.unexplained:
        state = journal.get(difference.subject) if difference.kind == "order_lost" else None
        if state is not None and not state.done:
            note = f"declared never placed by {by}: {reason}"
            journal.save(replace(state, status=OrderStatus.ERROR, note=note), note)
            done.append(f"order {difference.subject} declared never placed")
    if any(d.kind in ("balance", "external_fill") for d in result.unexplained):
        with unit_of_work(engine) as session:
            accept_balances(session, account, result.exchange_balances, datetime.now(UTC))
        done.append(
            "balances set to the exchange's: "
            + ", ".join(f"{a} {v}" for a, v in sorted(result.exchange_balances.items()))
        )
    return done
