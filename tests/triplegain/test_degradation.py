"""Graceful degradation: levels from consecutive failures, hysteresis on the way down, real effects."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from triplegain.degradation import (
    Health,
    HealthOutcome,
    level_for,
    llm_outcomes,
    record,
    resolution_outcomes,
)
from triplegain.llm.models import LLMCall
from triplegain.models.conflicts import Conflict, ConflictType, ResolutionAction
from triplegain.models.enums import DegradationLevel
from triplegain.resolution import DEGRADED_BY, FALLBACK_BY, triage
from triplegain.settings import DegradationSettings

S = DegradationSettings()
T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
FAIL = HealthOutcome(kind="llm", ok=False, what="deepseek: unavailable")
OK = HealthOutcome(kind="llm", ok=True)
API_FAIL = HealthOutcome(kind="api", ok=False)
API_OK = HealthOutcome(kind="api", ok=True)


def run(outcomes: list[HealthOutcome], start: Health | None = None) -> tuple[Health, list[str]]:
    """Apply outcomes one at a time, a minute apart (the injected clock), collecting level transitions."""
    health, seen = start or Health(), []
    for i, outcome in enumerate(outcomes):
        health, changes = record(health, [outcome], S, T0 + timedelta(minutes=i))
        seen += [f"{c.from_level}->{c.to_level}" for c in changes]
    return health, seen


def test_every_level_is_reached_at_3_6_and_9_consecutive_failures() -> None:
    levels = [level_for(n, S) for n in range(12)]

    assert (
        levels
        == [DegradationLevel.NORMAL] * 3
        + [DegradationLevel.REDUCED] * 3
        + [DegradationLevel.LIMITED] * 3
        + [DegradationLevel.EMERGENCY] * 3
    )


def test_failures_escalate_one_transition_at_a_time_with_the_time_it_happened() -> None:
    health, seen = run([FAIL] * 9)

    assert seen == ["normal->reduced", "reduced->limited", "limited->emergency"]
    assert health.level is DegradationLevel.EMERGENCY and health.llm_failures == 9
    assert health.changed_at == T0 + timedelta(minutes=8)


def test_llm_and_api_failures_add_up() -> None:
    health, _ = run([FAIL, API_FAIL, FAIL])

    assert (health.llm_failures, health.api_failures, health.level) == (2, 1, DegradationLevel.REDUCED)


def test_three_successes_take_one_failure_off_and_a_failure_resets_the_streak() -> None:
    reduced, _ = run([FAIL] * 3)

    after_two, _ = run([OK, OK], reduced)
    assert after_two.llm_failures == 3 and after_two.successes == 2
    interrupted, _ = run([OK, OK, FAIL, OK, OK], reduced)
    assert interrupted.llm_failures == 4 and interrupted.successes == 2
    recovered, seen = run([OK] * 3, reduced)
    assert recovered.llm_failures == 2 and seen == ["reduced->normal"]


def test_a_fifty_percent_failure_rate_never_flaps_between_levels() -> None:
    health, seen = run([FAIL] * 3)

    health, seen = run([OK, FAIL] * 50, health)

    assert seen == ["reduced->limited", "limited->emergency"]  # it only ever gets worse


def test_recovery_from_emergency_needs_many_successes_and_reports_each_step() -> None:
    emergency, _ = run([FAIL] * 9)

    health, seen = run([API_OK] * 21, emergency)

    assert seen == ["emergency->limited", "limited->reduced", "reduced->normal"]
    assert health.level is DegradationLevel.NORMAL and health.llm_failures == 2


def test_successes_of_one_kind_pay_off_the_other_when_theirs_is_clear() -> None:
    health, _ = run([API_FAIL, API_FAIL, FAIL] + [OK] * 3)

    assert (health.llm_failures, health.api_failures) == (0, 2)  # its own kind first
    health, _ = run([OK] * 3, health)
    assert (health.llm_failures, health.api_failures) == (0, 1)
    health, _ = run([OK] * 6, health)
    assert (health.llm_failures, health.api_failures) == (0, 0)


def test_change_events_are_named_like_the_reference() -> None:
    _, up = record(Health(), [FAIL] * 3, S, T0)
    _, down = record(up and Health(llm_failures=3, level=DegradationLevel.REDUCED), [OK] * 3, S, T0)

    assert [c.name for c in up] == ["degradation_increased"]
    assert up[0].event_name == "triplegain.degradation.increased" and "deepseek" in up[0].reason
    assert [c.name for c in down] == ["degradation_recovery"]
    assert down[0].event_name == "triplegain.degradation.recovery"


@given(st.lists(st.booleans(), max_size=200))
def test_the_level_always_matches_the_outstanding_failures(results: list[bool]) -> None:
    health, changes = record(Health(), [HealthOutcome(kind="llm", ok=ok) for ok in results], S, T0)

    assert health.level is level_for(health.llm_failures + health.api_failures, S)
    for before, after in itertools.pairwise(changes):
        assert before.to_level is after.from_level


def call(outcome: str, minute: int) -> LLMCall:
    return LLMCall(
        cycle_id="c",
        agent="trading_decision",
        provider="deepseek",
        model="m",
        started_at=T0 + timedelta(minutes=minute),
        outcome=outcome,  # type: ignore[arg-type]
    )


def test_calls_count_in_start_order_and_budget_refusals_do_not_count() -> None:
    calls = [call("ok", 2), call("unavailable", 1), call("circuit_open", 3), call("budget_exceeded", 4)]
    calls += [call("timeout", 5), call("invalid", 6), call("repaired", 7), call("rejected", 8)]

    assert [o.ok for o in llm_outcomes(calls)] == [False, True, False, False, False, True, False]


def test_a_resolution_that_timed_out_counts_as_one_failure() -> None:
    assert [o.ok for o in resolution_outcomes(True, True, [])] == [False]
    assert [o.ok for o in resolution_outcomes(True, True, [call("unavailable", 1)])] == [False]
    assert resolution_outcomes(True, False, [call("ok", 1)])[0].ok
    assert resolution_outcomes(False, True, []) == []


def conflict(kind: ConflictType, symbol: str = "BTC/USDT") -> Conflict:
    return Conflict(
        type=kind,
        symbol=symbol,
        description="d",
        agents_involved=["technical_analysis"],
        fallback="abort" if kind is ConflictType.REGIME_CHANGE else "wait",
    )


def test_triage_sends_only_regime_conflicts_to_a_model_when_limited() -> None:
    found = [
        conflict(ConflictType.TA_SENTIMENT, "XRP/USDT"),
        conflict(ConflictType.CHOPPY_REGIME),
        conflict(ConflictType.TA_SENTIMENT),
    ]

    assert triage(found, DegradationLevel.REDUCED) == (found, [])
    to_model, local = triage(found, DegradationLevel.LIMITED)
    assert [c.symbol for c in to_model] == ["BTC/USDT", "BTC/USDT"]
    assert [(r.symbol, r.action, r.confidence, r.decided_by) for r in local] == [
        ("XRP/USDT", ResolutionAction.PROCEED, 0.5, DEGRADED_BY)
    ]
    to_model, local = triage(found, DegradationLevel.EMERGENCY)
    assert to_model == [] and {r.decided_by for r in local} == {FALLBACK_BY}
    assert all(r.action is ResolutionAction.WAIT for r in local)


def test_the_level_decides_what_runs() -> None:
    assert [lvl.uses_sentiment for lvl in DegradationLevel] == [True, False, False, False]
    assert [lvl.uses_llms for lvl in DegradationLevel] == [True, True, True, False]
    assert [lvl.opens_positions for lvl in DegradationLevel] == [True, True, True, False]
    assert Decimal(DegradationLevel.EMERGENCY.rank) == 3
