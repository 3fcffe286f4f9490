"""The hodl bags' history rows (their state lives beside the coordinator's, `coordinator_state.hodl`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from triplegain.hodl import HodlEntry
from triplegain.storage.tables import HodlHistoryRow


def hodl_rows(run_id: str, entries: Iterable[HodlEntry]) -> list[HodlHistoryRow]:
    """A run's hodl history: profit put aside, purchases, cash held."""
    return [
        HodlHistoryRow(
            run_id=run_id,
            at=e.at,
            asset=e.asset,
            kind=e.kind,
            usd=e.usd,
            amount=e.amount,
            price=e.price,
            position_id=e.position_id,
        )
        for e in entries
    ]


def load_hodl_history(session: Session, limit: int = 50) -> list[HodlEntry]:
    """The newest `limit` lines of the bags' history, newest first."""
    rows = session.scalars(select(HodlHistoryRow).order_by(HodlHistoryRow.id.desc()).limit(limit))
    return [
        HodlEntry(
            at=r.at,
            asset=r.asset,
            kind=r.kind,
            usd=r.usd,
            amount=r.amount,
            price=r.price,
            position_id=r.position_id,
        )
        for r in rows
    ]
