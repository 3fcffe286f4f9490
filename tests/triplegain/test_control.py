from datetime import UTC, datetime

import pytest

from triplegain.control import transition
from triplegain.errors import ControlError
from triplegain.models.enums import CoordinatorState as S

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "command", "target"),
    [
        (S.RUNNING, "pause", S.PAUSED),
        (S.PAUSED, "resume", S.RUNNING),
        (S.RUNNING, "halt", S.HALTED),
        (S.PAUSED, "halt", S.HALTED),
    ],
)
def test_allowed_changes_record_who_and_why(current: S, command: str, target: S) -> None:
    change = transition(current, command, " ana ", " FOMC at 18:00 ", NOW)  # type: ignore[arg-type]

    assert change is not None and (change.from_state, change.to_state) == (current, target)
    assert (change.actor, change.reason, change.at) == ("ana", "FOMC at 18:00", NOW)


@pytest.mark.parametrize(
    ("current", "command"), [(S.PAUSED, "pause"), (S.RUNNING, "resume"), (S.HALTED, "halt")]
)
def test_asking_for_the_current_state_changes_nothing(current: S, command: str) -> None:
    assert transition(current, command, "ana", "again", NOW) is None  # type: ignore[arg-type]


def test_resuming_from_halted_needs_confirmation() -> None:
    with pytest.raises(ControlError, match="explicit confirmation"):
        transition(S.HALTED, "resume", "ana", "breaker checked", NOW)

    change = transition(S.HALTED, "resume", "ana", "breaker checked", NOW, confirm=True)
    assert change is not None and change.to_state is S.RUNNING


def test_pausing_a_halted_coordinator_is_refused() -> None:
    with pytest.raises(ControlError, match="HALTED: resume it"):
        transition(S.HALTED, "pause", "ana", "why not", NOW)


def test_a_reason_is_required() -> None:
    with pytest.raises(ControlError, match="needs a reason"):
        transition(S.RUNNING, "halt", "ana", "  ", NOW)


def test_event_names() -> None:
    names = {
        c: transition(S.RUNNING if c != "resume" else S.PAUSED, c, "a", "r", NOW).event_name  # type: ignore[union-attr,arg-type]
        for c in ("pause", "resume", "halt")
    }

    assert names == {
        "pause": "triplegain.coordinator.paused",
        "resume": "triplegain.coordinator.resumed",
        "halt": "triplegain.coordinator.halted",
    }
