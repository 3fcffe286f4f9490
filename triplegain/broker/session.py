"""A live account's pieces, built from the settings: the exchange, the journal, the brokers, and the
reconciliation every run that can trade makes first (issue 16). Callers check the gate
(`triplegain.live_gate.authorize_live`) before they build any of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import Backoff, CallBudget, LiveBroker
from triplegain.broker.protection import recover_protections
from triplegain.broker.reconcile import LocalBook, Reconciliation, reconcile
from triplegain.cycle_types import AccountState
from triplegain.live_gate import ExchangeKeys
from triplegain.market.exchange import ccxt_exchange
from triplegain.settings import Settings
from triplegain.storage import engine_for
from triplegain.storage.live_orders import SqlOrderJournal


def exchange_client(settings: Settings, keys: ExchangeKeys) -> Any:
    """The ccxt exchange of `execution.exchange` with the account's keys, its limiter on."""
    s = settings.execution
    options = {
        "apiKey": keys.api_key.get_secret_value(),
        "secret": keys.secret.get_secret_value(),
        "timeout": int(s.timeout_seconds * 1000),
    }
    return ccxt_exchange(s.exchange, options, s.api_url, "execution.exchange")


def live_broker(settings: Settings, keys: ExchangeKeys) -> LiveBroker:
    """Orders on the exchange, journalled in the project database, within the configured budgets."""
    s = settings.execution
    return LiveBroker(
        exchange_client(settings, keys),
        SqlOrderJournal(engine_for(settings)),
        budget=CallBudget(s.calls_per_minute, s.orders_per_minute),
        lookup=Backoff(first=1.0, cap=8.0, attempts=s.lookup_attempts),
    )


def exchange_broker(settings: Settings, keys: ExchangeKeys, account: AccountState) -> ExchangeBroker:
    """The broker a live run's coordination trades on: the account's balances, its positions' protection
    as the journal holds it."""
    live = live_broker(settings, keys)
    assert isinstance(live.journal, SqlOrderJournal)
    protections = recover_protections(live.journal, list(account.positions))
    return ExchangeBroker(live, account.balances, settings.broker, settings.market.symbol_specs, protections)


def reconcile_account(settings: Settings, keys: ExchangeKeys, account: AccountState) -> Reconciliation:
    """The account against the exchange before a run trades: the journal's unsettled orders, the open
    orders, the fills since the account was last settled (an hour of margin), the protection, the
    balances."""
    live = live_broker(settings, keys)
    journal = live.journal
    assert isinstance(journal, SqlOrderJournal)
    since = account.marked_at - timedelta(hours=1) if account.marked_at else None
    book = LocalBook(
        balances=account.balances,
        protections=list(recover_protections(journal, list(account.positions)).values()),
        last_sync_ms=int(since.timestamp() * 1000) if since else None,
    )
    unsettled = journal.unsettled()
    return reconcile(live, journal, unsettled, journal.orders(), book)
