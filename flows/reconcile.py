"""`triplegain reconcile`: a live account against its exchange, and the operator's word on what differs.

Every trading cycle of a live account reconciles first and trades only when nothing is unexplained; this
flow shows the same comparison at any time, and with `accept=True` resolves what the operator vouches for:
adopted external orders accepted, lost orders declared never placed, a killed run's filled orders recorded
(as its broker journalled them), the balances set to the exchange's.
A missing protection order cannot be accepted: `protect=True` places a new pair for each position whose
stop-loss or take-profit is no longer open (cancelled by hand, expired), on the operator's word. An exchange
that did not answer cannot be accepted either: ask again.

From a notebook:

    from flows.reconcile import reconcile
    result = reconcile()
    print(result.report())
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.control import current_user
from flows.live import live_account_turn, live_keys
from flows.settings import load_run_settings
from tasks.live import emit_reconciliation_event, reconcile_account
from tasks.storage import load_account
from triplegain.broker.reconcile import Reconciliation
from triplegain.broker.session import accept_reconciliation, protect_again
from triplegain.errors import ConfigError, ConfigProblem
from triplegain.live_gate import ExchangeKeys
from triplegain.settings import Settings


@flow(name="reconcile", log_prints=False)
def reconcile(
    accept: bool = False,
    reason: str | None = None,
    by: str | None = None,
    config_file: str | None = None,
    protect: bool = False,
) -> Reconciliation:
    """Compare the live account with the exchange; with `protect`, first place a new protection pair for
    each position whose stop-loss or take-profit is no longer open; with `accept`, resolve the differences
    on the operator's word and compare again (`reason` required for either). Returns the (last)
    comparison."""
    settings = load_run_settings(config_file, None)
    keys = live_keys(settings)
    if keys is None:
        raise ConfigError(
            [
                ConfigProblem(
                    "execution.mode", "paper", "live: reconcile compares a live account with its exchange"
                )
            ]
        )
    if (accept or protect) and not (reason or "").strip():
        raise ConfigError([ConfigProblem("reason", reason, "why, recorded with who asked")])
    who = by or current_user()
    run_key = f"reconcile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    with live_account_turn(settings, run_key):
        return _reconcile(settings, keys, run_key, accept, protect, reason or "", who)


def _reconcile(
    settings: Settings,
    keys: ExchangeKeys,
    run_key: str,
    accept: bool,
    protect: bool,
    reason: str,
    who: str,
) -> Reconciliation:
    """The comparison, and what `protect` and `accept` do, in the live account's turn."""
    logger = get_run_logger()
    account = load_account(settings)
    if protect:
        for line in protect_again(settings, keys, account, who, reason):
            logger.warning("on the word of %s: %s", who, line)
    result = reconcile_account(settings, keys, account)
    emit_reconciliation_event(result, run_key)
    logger.info("%s", result.report())
    if not accept or result.trading_allowed:
        return result
    for line in accept_reconciliation(settings, keys, result, account, who, reason):
        logger.warning("accepted by %s: %s", who, line)
    again = reconcile_account(settings, keys, load_account(settings))
    emit_reconciliation_event(again, run_key)
    return again
