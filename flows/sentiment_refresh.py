"""The sentiment-refresh flow: rate recent news per symbol and store the reports with their validity window.

Scheduled every 30 minutes by default; trading cycles use the newest report still valid at their time.
At degradation level REDUCED or worse, and while the coordinator is HALTED, the refresh is skipped.

    from flows.sentiment_refresh import sentiment_refresh
    reports = sentiment_refresh(at="2022-05-10T12:00Z", config_file="llm.yaml")
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.llm_setup import gateway_for, llm_setup
from flows.settings import load_run_settings
from flows.tracking import name_run, tracked_run
from tasks.agents import assess_sentiment_with_llms
from tasks.news import fetch_headlines
from tasks.storage import load_account, prepare_database, save_sentiment_refresh
from triplegain.cycle import parse_time
from triplegain.llm.gateway import BudgetExhausted
from triplegain.models.analysis import SentimentReport
from triplegain.models.enums import CoordinatorState

ARTIFACT_KEY = "sentiment-report"
FLOW_NAME = "sentiment-refresh"


@flow(name=FLOW_NAME, log_prints=False)
def sentiment_refresh(
    at: datetime | str | None = None, symbols: list[str] | None = None, config_file: str | None = None
) -> list[SentimentReport]:
    """Rate each symbol's recent headlines with the sentiment models; returns the stored reports."""
    logger = get_run_logger()
    settings = load_run_settings(config_file, symbols)
    when = parse_time(at) if at is not None else datetime.now(UTC)
    run_key = f"sentiment-{when:%Y%m%dT%H%MZ}"
    name_run(run_key)
    prepare_database(settings)
    with tracked_run(FLOW_NAME, run_key, settings) as run:
        account = load_account(settings)
        level = account.health.level
        if account.coordinator is CoordinatorState.HALTED:
            logger.warning("coordinator is HALTED: only the market watch runs; no sentiment refresh")
            run.status = "skipped"
            return []
        if not level.uses_sentiment:
            logger.warning("degradation %s: sentiment is skipped until the system recovers", level)
            run.status = "skipped"
            return []
        setup = llm_setup(settings)
        models = setup.chain(settings.llm.sentiment_models) if setup else []
        if setup is None or not models:
            logger.warning("no usable sentiment models (llm.sentiment_models, with keys): nothing to refresh")
            run.status = "skipped"
            return []
        gateway = gateway_for(settings, account.llm_breakers, setup.spent_today)
        futures = []
        for symbol in settings.market.symbols:
            headlines = fetch_headlines.submit(symbol, when, settings)
            futures.append(
                assess_sentiment_with_llms.submit(gateway, models, symbol, headlines, when, settings)
            )
        reports = [r for r in (f.result() for f in futures) if r is not None]
        result = gateway.result()
        save_sentiment_refresh(reports, result, settings, run.id)
    for event in result.events:
        logger.warning(_budget_line(event))
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=render(reports, when), description=when.isoformat())
    return reports


def render(reports: list[SentimentReport], at: datetime) -> str:
    """The refresh as a markdown table."""
    rows = [
        f"| {r.symbol} | {r.bias} | {r.overall_score:+.2f} | {r.confidence:.2f} | {r.fear_greed} | "
        f"{r.valid_until:%Y-%m-%d %H:%M} | {r.model_used} |"
        for r in reports
    ]
    header = "| symbol | bias | score | confidence | fear/greed | valid until | models |\n" + "|---" * 7 + "|"
    return f"# Sentiment as of {at:%Y-%m-%d %H:%M} UTC\n\n" + "\n".join([header, *rows]) + "\n"


def _budget_line(event: BudgetExhausted) -> str:
    return f"LLM {event.scope} budget of {event.limit_usd} USD spent: remaining symbols got no sentiment"
