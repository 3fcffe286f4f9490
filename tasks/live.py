"""Live-account tasks (issue 16): the reconciliation a live run makes before it may trade, and its event.

The keys travel as `ExchangeKeys` (SecretStr, shown masked); the exchange client is built inside the task,
never passed to it."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from tasks.storage import engine_for
from triplegain.broker.reconcile import Reconciliation
from triplegain.broker.session import reconcile_account as reconcile_with_exchange
from triplegain.cycle_types import AccountState
from triplegain.degradation import HealthOutcome, HealthUpdate
from triplegain.live_gate import ExchangeKeys
from triplegain.settings import Settings
from triplegain.storage import unit_of_work
from triplegain.storage.accounts import update_health
from triplegain.storage.live_orders import modes_held

RECONCILIATION_RESOURCE = {
    "prefect.resource.id": "triplegain.reconciliation",
    "prefect.resource.name": "TripleGain live account reconciliation",
}


@task(name="load-account-modes", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def load_account_modes(settings: Settings) -> set[str]:
    """The account modes the project database holds (paper, live): the two never share one."""
    return modes_held(engine_for(settings))


@task(name="reconcile-account", cache_policy=NO_CACHE)
def reconcile_account(settings: Settings, keys: ExchangeKeys, account: AccountState) -> Reconciliation:
    """The account against the exchange; not retried (it is asked again by the next run, and a half-run
    reconciliation stops trading anyway)."""
    return reconcile_with_exchange(settings, keys, account)


@task(name="record-exchange-health", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def record_exchange_health(settings: Settings, result: Reconciliation) -> None:
    """The reconciliation's calls as one API outcome for the degradation monitor: a failure when the
    exchange left any unanswered (its private API down while its market data may still answer), a success
    otherwise."""
    unanswered = [d for d in result.differences if d.kind == "exchange_unanswered"]
    what = (
        "exchange: " + "; ".join(f"{d.subject} unanswered" for d in unanswered) if unanswered else "exchange"
    )
    outcome = HealthOutcome(kind="api", ok=not unanswered, what=what[:200])
    change = HealthUpdate((outcome,), settings.degradation, datetime.now(UTC))
    with unit_of_work(engine_for(settings)) as session:
        update_health(session, change)


@task(name="emit-reconciliation-event", cache_policy=NO_CACHE)
def emit_reconciliation_event(result: Reconciliation, run_key: str) -> None:
    """triplegain.reconciliation.failed when anything is unexplained (trading stopped), .passed otherwise."""
    reasons = "; ".join(str(d) for d in result.unexplained)
    emit_event(
        event="triplegain.reconciliation." + ("passed" if result.trading_allowed else "failed"),
        resource={
            **RECONCILIATION_RESOURCE,
            "triplegain.run": run_key,
            "triplegain.actor": "reconciliation",
            "triplegain.reason": reasons[:500] or "the account agrees with the exchange",
        },
        payload={
            "trading_allowed": result.trading_allowed,
            "differences": [str(d) for d in result.differences],
        },
    )


RISK_RESOURCE = {"prefect.resource.id": "triplegain.risk", "prefect.resource.name": "TripleGain live risk"}


@task(name="emit-urgent-events", cache_policy=NO_CACHE)
def emit_urgent_events(notes: list[str], run_key: str) -> int:
    """triplegain.risk.urgent for every URGENT line of a run's report (a position left unprotected on the
    exchange, both protection orders filled); returns how many."""
    urgent = [n for n in notes if n.startswith("URGENT")]
    for note in urgent:
        emit_event(
            event="triplegain.risk.urgent",
            resource={
                **RISK_RESOURCE,
                "triplegain.run": run_key,
                "triplegain.actor": "exchange-broker",
                "triplegain.reason": note[:500],
            },
        )
    return len(urgent)
