"""Language-model calls (every attempt, with tokens and cost) and the valid answers recorded for replay."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triplegain.llm.models import LLMCall
from triplegain.llm.replay import Recording
from triplegain.storage.tables import LLMCallRow, LLMRecordingRow


def save_llm_calls(session: Session, calls: list[LLMCall], recordings: list[Recording] | None = None) -> None:
    """Record LLM call attempts and the valid answers (with the cycle's unit of work, or on their own for
    other flows). An answer already recorded under the same key is kept as it was."""
    session.add_all(LLMCallRow(**c.model_dump()) for c in calls)
    if not recordings:
        return
    new = {r.key: r for r in recordings}
    known = set(session.scalars(select(LLMRecordingRow.key).where(LLMRecordingRow.key.in_(list(new)))))
    session.add_all(LLMRecordingRow(**r.model_dump()) for key, r in new.items() if key not in known)


def load_recordings(session: Session, models: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Recorded answers by key (of the given models, or all), for a replaying backtest."""
    query = select(LLMRecordingRow.key, LLMRecordingRow.answer)
    if models is not None:
        query = query.where(LLMRecordingRow.model.in_(models))
    return {row.key: row.answer for row in session.execute(query)}


def load_llm_spent(session: Session, since: datetime) -> Decimal:
    """USD spent on LLM calls since `since` (what the day budget has left to give)."""
    rows = session.scalars(select(LLMCallRow.cost_usd).where(LLMCallRow.started_at >= since))
    return sum(rows, Decimal(0))
