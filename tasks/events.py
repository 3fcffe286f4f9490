"""Prefect events for coordinator state changes, sent once each (the database remembers which were sent)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from sqlalchemy import Engine

from tasks.storage import engine_for
from triplegain.degradation import DegradationChanged
from triplegain.settings import Settings
from triplegain.storage import unit_of_work
from triplegain.storage.accounts import load_unemitted_changes, mark_emitted

RESOURCE = {
    "prefect.resource.id": "triplegain.coordinator",
    "prefect.resource.name": "TripleGain coordinator",
}


def emit_pending_events(engine: Engine) -> int:
    """Send recorded state changes that have not reached Prefect yet, oldest first; returns how many."""
    with unit_of_work(engine) as session:
        pending = load_unemitted_changes(session)
        for _, change in pending:
            emit_event(event=change.event_name, resource=RESOURCE, payload=change.model_dump(mode="json"))
        mark_emitted(session, [i for i, _ in pending], datetime.now(UTC))
    return len(pending)


DEGRADATION_RESOURCE = {
    "prefect.resource.id": "triplegain.degradation",
    "prefect.resource.name": "TripleGain degradation level",
}


@task(name="emit-degradation-events", cache_policy=NO_CACHE)
def emit_degradation_events(changes: list[DegradationChanged]) -> None:
    """triplegain.degradation.increased / .recovery for each level change a run committed."""
    for change in changes:
        emit_event(
            event=change.event_name,
            resource=DEGRADATION_RESOURCE,
            payload={"name": change.name, **change.model_dump(mode="json")},
        )


@task(name="emit-coordinator-events", cache_policy=NO_CACHE)
def emit_coordinator_events(settings: Settings) -> int:
    """The pending coordinator events, from inside a flow run (where a Prefect API is always at hand)."""
    return emit_pending_events(engine_for(settings))
