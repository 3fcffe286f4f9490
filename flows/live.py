"""Which account a run trades on: paper (the default), or live once every condition holds (issue 16).

`live_keys` is what every flow that can trade asks first: None on paper (after refusing a database that
holds a live account), the exchange keys on live (after the gate: `triplegain.live_gate`). A refused live
run fails at once, naming each missing condition; it never falls back to paper. A live run then asks
`reconciled` before it may trade. `live_account_turn` makes the runs of a live account take turns."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger

from blocks.exchange import exchange_keys
from tasks.live import (
    emit_reconciliation_event,
    load_account_modes,
    reconcile_account,
    record_exchange_health,
)
from triplegain.broker.reconcile import Reconciliation
from triplegain.cycle_types import AccountState
from triplegain.errors import CycleError
from triplegain.live_gate import ExchangeKeys, authorize_live, check_database_mode, trading_mode
from triplegain.settings import Settings
from triplegain.storage import engine_for
from triplegain.storage.turns import TurnNotTaken, take_account_turn


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


@contextmanager
def live_account_turn(settings: Settings, what: str) -> Iterator[None]:
    """On a live account, one run at a time reconciles, acts on the exchange and commits: a trading cycle,
    a market watch, a DCA batch and `triplegain reconcile` wait for each other's turn. The turn is held by
    the account's database (`triplegain.storage.turns`), which every run of the account shares whether or
    not it shares a Prefect server; a run killed holding it frees it at once. Without turns, a run starting
    while another was between its fills and its commit would find that run's fills unrecorded and stop
    trading. A run that waits `execution.account_wait_seconds` in vain fails (CycleError), doing nothing.
    Paper runs take no turn."""
    if settings.execution.mode != "live":
        yield
        return
    wait = settings.execution.account_wait_seconds

    def waiting(holder: str | None) -> None:
        get_run_logger().warning(
            "%s: another run holds the live account (%s); waiting up to %g s", what, holder or "unknown", wait
        )

    try:
        turn = take_account_turn(engine_for(settings), wait, on_wait=waiting, holder=what)
    except TurnNotTaken as e:
        raise CycleError(f"{what}: another run held the live account for {wait:g} s; nothing done") from e
    with turn:
        yield
