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
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from blocks.exchange import exchange_keys
from flows.settings import prefect_api_url
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


LIVE_ACCOUNT_LIMIT = "triplegain-live-account"  # a Prefect global concurrency limit of one slot


@contextmanager
def live_account_turn(settings: Settings, what: str) -> Iterator[None]:
    """On a live account, one run at a time reconciles, acts on the exchange and commits: a trading cycle,
    a market watch, a DCA batch and `triplegain reconcile` wait for each other's turn (a Prefect global
    concurrency limit of one slot, held under a lease the holder renews; a run killed holding it frees it
    when the lease lapses, `execution.account_lease_seconds`). Without it, a run starting while another
    was between its fills and its commit would find that run's fills unrecorded and stop trading. A run
    that waits `execution.account_wait_seconds` in vain fails (CycleError), doing nothing. Paper runs take
    no turn."""
    if settings.execution.mode != "live":
        yield
        return
    s = settings.execution
    if prefect_api_url() is None:
        get_run_logger().warning(
            "%s: no Prefect API configured: this run takes its turn on its own temporary server, not with "
            "the runs of your deployments; set PREFECT_API_URL to theirs",
            what,
        )
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(LIVE_ACCOUNT_LIMIT, 1)
    holding = False
    try:
        with concurrency(
            LIVE_ACCOUNT_LIMIT,
            occupy=1,
            timeout_seconds=s.account_wait_seconds,
            lease_duration=s.account_lease_seconds,
            strict=True,
        ):
            holding = True
            yield
    except TimeoutError as e:
        if holding:
            raise
        raise CycleError(
            f"{what}: another run held the live account for {s.account_wait_seconds:g} s; nothing done"
        ) from e
