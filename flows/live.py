"""Which account a run trades on: paper (the default), or live once every condition holds (issue 16).

`live_keys` is what every flow that can trade asks first: None on paper (after refusing a database that
holds a live account), the exchange keys on live (after the gate: `triplegain.live_gate`). A refused live
run fails at once, naming each missing condition; it never falls back to paper. A live run then asks
`reconciled` before it may trade."""

from __future__ import annotations

import os

from blocks.exchange import exchange_keys
from tasks.live import (
    emit_reconciliation_event,
    load_account_modes,
    reconcile_account,
    record_exchange_health,
)
from triplegain.broker.reconcile import Reconciliation
from triplegain.cycle_types import AccountState
from triplegain.live_gate import ExchangeKeys, authorize_live, check_database_mode, trading_mode
from triplegain.settings import Settings


def live_keys(settings: Settings) -> ExchangeKeys | None:
    """None for a paper run; the keys of an authorized live run; LiveTradingRefused otherwise."""
    mode = trading_mode(settings, os.environ)
    modes = load_account_modes(settings)
    if mode == "paper":
        check_database_mode("paper", modes)
        return None
    keys = exchange_keys()
    return authorize_live(settings, os.environ, keys, modes).keys


def reconciled(settings: Settings, keys: ExchangeKeys, account: AccountState, run_key: str) -> Reconciliation:
    """The live account against the exchange before a run trades: compared, announced
    (triplegain.reconciliation.*) and counted for the degradation monitor. The caller stops trading when
    `trading_allowed` is false."""
    result = reconcile_account(settings, keys, account)
    emit_reconciliation_event(result, run_key)
    record_exchange_health(settings, result)
    return result
