"""Sentiment reports with their validity window."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triplegain.degradation import HealthUpdate
from triplegain.llm.gateway import LLMRunResult
from triplegain.models.analysis import SentimentReport
from triplegain.storage.accounts import save_llm_breakers, update_health
from triplegain.storage.llm_calls import save_llm_calls
from triplegain.storage.runs import finish_run
from triplegain.storage.tables import SentimentReportRow


def save_sentiment(session: Session, report: SentimentReport) -> None:
    """Store a sentiment report."""
    session.add(
        SentimentReportRow(
            symbol=report.symbol,
            as_of=report.timestamp,
            valid_until=report.valid_until,
            bias=report.bias.value,
            overall_score=report.overall_score,
            confidence=report.confidence,
            model_used=report.model_used,
            report=report.model_dump(mode="json"),
            created_at=datetime.now(UTC),
        )
    )


def latest_sentiment(session: Session, symbol: str, at: datetime) -> SentimentReport | None:
    """The newest report for `symbol` made at or before `at` and still valid at `at`."""
    row = session.scalars(
        select(SentimentReportRow)
        .where(
            SentimentReportRow.symbol == symbol,
            SentimentReportRow.as_of <= at,
            SentimentReportRow.valid_until > at,
        )
        .order_by(SentimentReportRow.as_of.desc(), SentimentReportRow.id.desc())
        .limit(1)
    ).first()
    return SentimentReport.model_validate(row.report) if row else None


def load_sentiments(session: Session, symbols: list[str], at: datetime) -> dict[str, SentimentReport]:
    """The newest still-valid report of each symbol, where there is one."""
    found = {s: latest_sentiment(session, s, at) for s in symbols}
    return {s: r for s, r in found.items() if r is not None}


def save_sentiment_refresh(
    session: Session,
    reports: list[SentimentReport],
    llm: LLMRunResult,
    health: HealthUpdate,
    flow_run_id: int | None = None,
) -> None:
    """A sentiment refresh's reports, the model calls behind them, the breakers and degradation counters
    they moved (the account version is untouched: a cycle in flight may still commit), and the run's end."""
    if flow_run_id is not None:
        finish_run(session, flow_run_id, "completed", datetime.now(UTC))
    for report in reports:
        save_sentiment(session, report)
    save_llm_calls(session, llm.records, llm.recordings)
    save_llm_breakers(session, llm.breakers)
    update_health(session, health)


def refresh_times(session: Session, start: datetime, end: datetime) -> list[datetime]:
    """When sentiment refreshes ran between `start` and `end` (their reports' as-of times), oldest first;
    a backtest replays them at these times. A refresh that began before `start` still counts while its
    report may be valid at `start`."""
    rows = session.scalars(
        select(SentimentReportRow.as_of)
        .where(SentimentReportRow.valid_until > start, SentimentReportRow.as_of <= end)
        .distinct()
        .order_by(SentimentReportRow.as_of)
    )
    return list(rows)
