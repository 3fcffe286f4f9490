"""Prefect events: each recorded coordinator change is sent once, oldest first; degradation changes carry
their name and levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

import tasks.events
from tasks.events import emit_degradation_events, emit_pending_events
from triplegain.control import StateChange
from triplegain.degradation import DegradationChanged
from triplegain.models.enums import CoordinatorState, DegradationLevel
from triplegain.storage import unit_of_work
from triplegain.storage.accounts import record_state_change

NOW = datetime(2024, 6, 30, 20, tzinfo=UTC)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    captured: list[tuple[str, dict[str, Any]]] = []

    def record(event: str, **kwargs: Any) -> None:
        captured.append((event, kwargs))

    monkeypatch.setattr(tasks.events, "emit_event", record)
    return captured


def change(to: CoordinatorState, at: datetime, from_state: CoordinatorState) -> StateChange:
    return StateChange(at=at, from_state=from_state, to_state=to, actor="ana", reason="test")


def test_pending_changes_are_sent_once_oldest_first(
    engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    with unit_of_work(engine) as s:
        record_state_change(s, change(CoordinatorState.PAUSED, NOW, CoordinatorState.RUNNING))
        record_state_change(
            s, change(CoordinatorState.RUNNING, NOW + timedelta(minutes=5), CoordinatorState.PAUSED)
        )

    first = emit_pending_events(engine)
    again = emit_pending_events(engine)

    assert (first, again) == (2, 0)
    assert [name for name, _ in sent] == ["triplegain.coordinator.paused", "triplegain.coordinator.resumed"]
    assert sent[0][1]["resource"]["prefect.resource.id"] == "triplegain.coordinator"
    assert sent[0][1]["payload"]["actor"] == "ana"
    # Who, why, from and to, as labels the event feed shows and an automation can match on.
    labels = {k: v for k, v in sent[0][1]["resource"].items() if k.startswith("triplegain.")}
    assert labels == {
        "triplegain.from": "running",
        "triplegain.to": "paused",
        "triplegain.actor": "ana",
        "triplegain.reason": "test",
    }
    assert sent[0][1]["related"] == [
        {
            "prefect.resource.id": "triplegain.actor.ana",
            "prefect.resource.role": "actor",
            "prefect.resource.name": "ana",
        }
    ]


def test_degradation_changes_become_named_events(sent: list[tuple[str, dict[str, Any]]]) -> None:
    moved = DegradationChanged(
        from_level=DegradationLevel.NORMAL,
        to_level=DegradationLevel.REDUCED,
        llm_failures=3,
        api_failures=0,
        reason="three failures",
        at=NOW,
    )

    emit_degradation_events.fn([moved])

    [(name, kwargs)] = sent
    assert name == "triplegain.degradation.increased"
    assert kwargs["payload"]["name"] == "degradation_increased" and kwargs["payload"]["to_level"] == "reduced"
    assert (
        kwargs["resource"]["triplegain.from"] == "normal" and kwargs["resource"]["triplegain.to"] == "reduced"
    )
    assert kwargs["resource"]["triplegain.reason"] == "three failures"
