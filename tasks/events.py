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

MAX_REASON = 500  # a label, not a document: a longer reason is in the payload
RESOURCE = {
    "prefect.resource.id": "triplegain.coordinator",
    "prefect.resource.name": "TripleGain coordinator",
}


def labelled(resource: dict[str, str], from_: object, to: object, actor: str, reason: str) -> dict[str, str]:
    """The resource with who, why, from and to as labels: the event feed shows them, an automation can
    match on them (`triplegain.actor: circuit-breaker`) and its notification can quote them."""
    return resource | {
        "triplegain.from": str(from_),
        "triplegain.to": str(to),
        "triplegain.actor": actor,
        "triplegain.reason": reason[:MAX_REASON],
    }


def actor_resource(actor: str) -> dict[str, str]:
    """Who made the change, as a related resource (a person's name, or `circuit-breaker`)."""
    return {
        "prefect.resource.id": f"triplegain.actor.{actor}",
        "prefect.resource.role": "actor",
        "prefect.resource.name": actor,
    }


def emit_pending_events(engine: Engine) -> int:
    """Send recorded state changes that have not reached Prefect yet, oldest first; returns how many."""
    with unit_of_work(engine) as session:
        pending = load_unemitted_changes(session)
        for _, change in pending:
            emit_event(
                event=change.event_name,
                resource=labelled(RESOURCE, change.from_state, change.to_state, change.actor, change.reason),
                related=[actor_resource(change.actor)],
                payload=change.model_dump(mode="json"),
            )
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
            resource=labelled(
                DEGRADATION_RESOURCE, change.from_level, change.to_level, "degradation-monitor", change.reason
            ),
            payload={"name": change.name, **change.model_dump(mode="json")},
        )


@task(name="emit-coordinator-events", cache_policy=NO_CACHE)
def emit_coordinator_events(settings: Settings) -> int:
    """The pending coordinator events, from inside a flow run (where a Prefect API is always at hand)."""
    return emit_pending_events(engine_for(settings))
