"""Kept candles in the project database: `triplegain.market.history.CandleStore` on SQLAlchemy."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from triplegain.market.history import Span, merged, reaching, series_of
from triplegain.models.market import CandleSeries
from triplegain.storage.database import insert_ignoring_conflicts
from triplegain.storage.tables import CandleRow, CandleSpanRow

COLUMNS = ("source", "symbol", "open_time", "open", "high", "low", "close", "volume")


class SqlCandleStore:
    """Candles and their covered spans in the `candles` and `candle_spans` tables. Each `keep` is one
    transaction; two processes keeping the same candles at once keep each once (a conflicting insert is
    ignored), and spans they both wrote are joined when read."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keep(self, source: str, symbol: str, candles: CandleSeries) -> int:
        if not len(candles):
            return 0
        first, last = int(candles.timestamps[0]), int(candles.timestamps[-1])
        key = (CandleRow.source == source, CandleRow.symbol == symbol)
        with Session(self.engine) as session, session.begin():
            known = set(
                session.scalars(
                    select(CandleRow.open_time).where(*key, CandleRow.open_time.between(first, last))
                )
            )
            rows = [dict(zip(COLUMNS, (source, symbol, *row), strict=True)) for row in candles.rows()]
            rows = [r for r in rows if r["open_time"] not in known]
            if rows:
                session.execute(insert_ignoring_conflicts(self.engine, CandleRow), rows)
            self._cover(session, source, symbol, (first, last))
        return len(rows)

    def before(self, source: str, symbol: str, start: int, limit: int) -> CandleSeries:
        with Session(self.engine) as session:
            span = reaching(self._spans(session, source, symbol), start)
            if span is None or limit <= 0:
                return series_of([])
            found = session.execute(
                select(
                    CandleRow.open_time,
                    CandleRow.open,
                    CandleRow.high,
                    CandleRow.low,
                    CandleRow.close,
                    CandleRow.volume,
                )
                .where(
                    CandleRow.source == source,
                    CandleRow.symbol == symbol,
                    CandleRow.open_time >= span[0],
                    CandleRow.open_time < start,
                )
                .order_by(CandleRow.open_time.desc())
                .limit(limit)
            ).all()
        return series_of([tuple(r) for r in reversed(found)])

    def spans(self, source: str, symbol: str) -> list[Span]:
        """The covered spans of `symbol` from `source`, joined, oldest first."""
        with Session(self.engine) as session:
            return merged(self._spans(session, source, symbol))

    def count(self, source: str, symbol: str) -> int:
        """How many candles of `symbol` from `source` are kept."""
        with Session(self.engine) as session:
            return int(
                session.scalar(
                    select(func.count()).where(CandleRow.source == source, CandleRow.symbol == symbol)
                )
                or 0
            )

    @staticmethod
    def _spans(session: Session, source: str, symbol: str) -> list[Span]:
        rows = session.execute(
            select(CandleSpanRow.first_open, CandleSpanRow.last_open).where(
                CandleSpanRow.source == source, CandleSpanRow.symbol == symbol
            )
        ).all()
        return [(int(a), int(b)) for a, b in rows]

    @staticmethod
    def _cover(session: Session, source: str, symbol: str, span: Span) -> None:
        """Record `span` as covered, joined with the spans it overlaps or touches (one row for the join)."""
        rows = session.execute(
            select(CandleSpanRow.id, CandleSpanRow.first_open, CandleSpanRow.last_open).where(
                CandleSpanRow.source == source, CandleSpanRow.symbol == symbol
            )
        ).all()
        joined = reaching([span, *((a, b) for _, a, b in rows)], span[0])
        assert joined is not None  # the merged spans hold `span` itself
        first, last = joined
        joined_ids = [i for i, a, b in rows if first <= a and b <= last]
        if joined_ids:  # a statement, not ORM deletes: a row another process joined first is simply gone
            session.execute(delete(CandleSpanRow).where(CandleSpanRow.id.in_(joined_ids)))
        session.add(CandleSpanRow(source=source, symbol=symbol, first_open=first, last_open=last))
