"""Conflicts between agents and how they were resolved (values; logic in conflicts.py and resolution.py)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ConflictType(StrEnum):
    """The kinds of conflict the coordinator detects."""

    TA_SENTIMENT = "ta_sentiment_conflict"
    CHOPPY_REGIME = "regime_conflict"
    REGIME_CHANGE = "regime_change_conflict"


class Conflict(BaseModel):
    """One conflict on one symbol, with what to do when no model can be asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ConflictType
    symbol: str
    agents_involved: list[str]
    description: str
    details: dict[str, str | float | None] = Field(default_factory=dict)
    fallback: str = Field(description="Conservative action without an LLM: wait or abort")


class ResolutionAction(StrEnum):
    """What to do with a conflicted signal."""

    PROCEED = "proceed"
    MODIFY = "modify"
    WAIT = "wait"
    ABORT = "abort"


class Modifications(BaseModel):
    """Changes a resolution asks for; bounded when applied."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    leverage: int | None = None
    size_reduction_pct: Decimal | None = None
    entry_adjustment_pct: Decimal | None = None


class Resolution(BaseModel):
    """How one symbol's conflicts were resolved, by whom and how fast (a row of conflict_resolutions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    action: ResolutionAction
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    modifications: Modifications | None = None
    decided_by: str = Field(description="The provider that answered, or 'conservative-fallback'")
    latency_ms: float = Field(0, ge=0)
    conflicts: list[Conflict]

    @property
    def proceeds(self) -> bool:
        """True when the trade may go on to the risk engine."""
        return self.action in (ResolutionAction.PROCEED, ResolutionAction.MODIFY)
