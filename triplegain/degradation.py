"""Graceful degradation across runs (reference spec 3.17, with the fixes of its section 10).

Consecutive LLM failures and market-data (API) failures are counted separately and added up; every
`failures_per_level` of them raises the level one step (3 -> REDUCED, 6 -> LIMITED, 9 -> EMERGENCY).
Every failure resets the success streak; `recovery_successes` successes in a row take one failure off
(the kind that succeeded, else the other), so a 50% failure rate cannot make the level flap. Ordinary task
errors count as API failures, and successes of either kind count (the reference never recorded them).
The state is persisted with the account, so a new process keeps the level it was in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.llm.models import LLMCall
from triplegain.models.enums import DegradationLevel
from triplegain.settings import DegradationSettings

Kind = Literal["llm", "api"]
_LEVELS = list(DegradationLevel)
LLM_FAILED = frozenset({"invalid", "unavailable", "rejected", "timeout", "circuit_open"})
LLM_SUCCEEDED = frozenset({"ok", "repaired"})


class HealthOutcome(BaseModel):
    """One observed success or failure of an LLM call or a market-data request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    ok: bool
    what: str = Field("", description="What it was, for the change's reason")


class Health(BaseModel):
    """The degradation counters and the level they give."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm_failures: int = Field(0, ge=0)
    api_failures: int = Field(0, ge=0)
    successes: int = Field(0, ge=0, description="Successes in a row since the last failure")
    level: DegradationLevel = DegradationLevel.NORMAL
    changed_at: AwareDatetime | None = None


class DegradationChanged(BaseModel):
    """The degradation level moved (bus event on system_events; Prefect event triplegain.degradation.*)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_level: DegradationLevel
    to_level: DegradationLevel
    llm_failures: int
    api_failures: int
    reason: str
    at: AwareDatetime

    @property
    def name(self) -> str:
        """`degradation_increased` when the level rose, `degradation_recovery` when it fell."""
        return (
            "degradation_increased" if self.to_level.rank > self.from_level.rank else "degradation_recovery"
        )

    @property
    def event_name(self) -> str:
        """The Prefect event name, e.g. triplegain.degradation.increased."""
        return "triplegain.degradation." + self.name.removeprefix("degradation_")


def level_for(failures: int, s: DegradationSettings) -> DegradationLevel:
    """The level `failures` consecutive failures (LLM and API together) give."""
    return _LEVELS[min(failures // s.failures_per_level, len(_LEVELS) - 1)]


def record(
    health: Health, outcomes: Iterable[HealthOutcome], s: DegradationSettings, at: datetime
) -> tuple[Health, list[DegradationChanged]]:
    """Apply outcomes in the order they happened; returns the new health and each level change."""
    llm, api, successes, level = health.llm_failures, health.api_failures, health.successes, health.level
    changed_at = health.changed_at
    changes: list[DegradationChanged] = []
    for outcome in outcomes:
        if outcome.ok:
            successes += 1
            if successes >= s.recovery_successes:
                successes = 0
                if (outcome.kind == "llm" and llm) or not api:
                    llm = max(llm - 1, 0)
                else:
                    api -= 1
        else:
            successes = 0
            llm, api = (llm + 1, api) if outcome.kind == "llm" else (llm, api + 1)
        new = level_for(llm + api, s)
        if new is not level:
            why = f"{'failure' if not outcome.ok else 'success'} of {outcome.kind}"
            why += f" ({outcome.what})" if outcome.what else ""
            changes.append(
                DegradationChanged(
                    from_level=level,
                    to_level=new,
                    llm_failures=llm,
                    api_failures=api,
                    reason=f"{why}: {llm} LLM and {api} API failures outstanding",
                    at=at,
                )
            )
            level, changed_at = new, at
    return Health(
        llm_failures=llm, api_failures=api, successes=successes, level=level, changed_at=changed_at
    ), changes


@dataclass(frozen=True)
class HealthUpdate:
    """A run's outcomes, applied at commit to the counters as stored then (under the row lock), so that two
    runs committing around each other both count."""

    outcomes: tuple[HealthOutcome, ...]
    policy: DegradationSettings
    at: datetime

    def apply(self, stored: Health) -> Health:
        """The stored counters after this run's outcomes."""
        return record(stored, self.outcomes, self.policy, self.at)[0]


def llm_outcomes(calls: Sequence[LLMCall]) -> list[HealthOutcome]:
    """Each model call, in the order it started: a success or a failure.

    A call refused by an open circuit breaker counts as a failure (the run got no answer: a provider that
    stays down keeps pushing the level up); a call refused by the spending budget counts as nothing.
    """
    ordered = sorted(calls, key=lambda c: c.started_at)
    return [
        HealthOutcome(kind="llm", ok=c.outcome in LLM_SUCCEEDED, what=f"{c.agent} {c.provider}: {c.outcome}")
        for c in ordered
        if c.outcome in LLM_FAILED | LLM_SUCCEEDED
    ]


def resolution_outcomes(asked: bool, fell_back: bool, calls: Sequence[LLMCall]) -> list[HealthOutcome]:
    """The resolution subflow's calls, plus one failure when it fell back without any call failing
    (its budget ran out while models were still thinking: a timeout the calls cannot record)."""
    outcomes = llm_outcomes(calls)
    if asked and fell_back and all(o.ok for o in outcomes):
        outcomes.append(
            HealthOutcome(kind="llm", ok=False, what="conflict resolution: no answer within budget")
        )
    return outcomes
