"""The hodl bags' history rows (their state lives beside the coordinator's, `coordinator_state.hodl`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from triplegain.hodl import HodlEntry
from triplegain.storage.tables import HodlHistoryRow


def hodl_rows(run_id: str, entries: Iterable[HodlEntry]) -> list[HodlHistoryRow]:
    """A run's hodl history: profit put aside, purchases, cash held."""
    return [HodlHistoryRow(run_id=run_id, **e.model_dump()) for e in entries]


def load_hodl_history(session: Session, limit: int = 50) -> list[HodlEntry]:
    """The newest `limit` lines of the bags' history, newest first."""
    rows = session.scalars(select(HodlHistoryRow).order_by(HodlHistoryRow.id.desc()).limit(limit))
    return [HodlEntry.model_validate(row, from_attributes=True) for row in rows]
