"""The trading cycle as a Prefect flow: each agent a task, symbols concurrently, one commit at the end.

From a notebook:

    from flows.trading_cycle import trading_cycle
    report = trading_cycle(at="2024-06-01T12:00Z")
    report.outcome("BTC/USDT").signal
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.states import Completed

from flows.conflict_resolution import ResolutionRun, resolve_conflicts
from flows.llm_setup import LLMSetup, gateway_for, llm_setup
from flows.settings import load_run_settings
from flows.tracking import commit_or_settle, tracked_run
from tasks.agents import analyze_technicals, assess_regime, decide, decide_with_llms
from tasks.coordination import coordinate_signals
from tasks.events import emit_coordinator_events, emit_degradation_events
from tasks.market import fetch_snapshot, market_source
from tasks.storage import (
    fetch_account,
    fetch_sentiments,
    fetch_unpublished_changes,
    fetch_unreported_failures,
    find_report,
    persist_cycle,
    prepare_database,
)
from triplegain.aio import run_sync
from triplegain.coordinator import AccountState, Coordination, SymbolAnalysis, api_outcomes
from triplegain.cycle import (
    build_report,
    cycle_id_for,
    cycle_status,
    find_conflicts,
    normalize_at,
    parse_time,
    skipped_report,
)
from triplegain.degradation import llm_outcomes, resolution_outcomes
from triplegain.errors import CycleError, MarketDataError, MarketDataUnavailable
from triplegain.llm.gateway import BudgetExhausted, LLMGateway, LLMRunResult
from triplegain.llm.models import ProviderConfig
from triplegain.market import ReplaySource
from triplegain.models.analysis import SentimentReport
from triplegain.models.conflicts import Conflict
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CoordinatorState, CycleStatus
from triplegain.models.market import MarketSnapshot
from triplegain.report import allocation_rows, render_markdown
from triplegain.resolution import FALLBACK_BY, triage
from triplegain.settings import Settings

ARTIFACT_KEY = "trading-cycle-report"
POSITIONS_ARTIFACT_KEY = "trading-cycle-positions"
FLOW_NAME = "trading-cycle"


@flow(name=FLOW_NAME, log_prints=False)
def trading_cycle(
    at: datetime | str | None = None,
    symbols: list[str] | None = None,
    config_file: str | None = None,
) -> CycleReport:
    """Run one trading cycle as of `at` (default: now, or the end of the replayed data) and return its report.

    Running the same hour again returns the stored report and places no order.
    """
    logger = get_run_logger()
    settings = load_run_settings(config_file, symbols)
    at = normalize_at(parse_time(at) if at is not None else default_cycle_time(settings))
    cycle_id = cycle_id_for(at)
    started = datetime.now(UTC)
    logger.info("cycle %s, database %s", cycle_id, prepare_database(settings))
    stored = stored_report(cycle_id, settings)
    if stored is not None:
        logger.info("%s already ran; returning its stored report, placing no order", cycle_id)
        return stored
    with tracked_run(FLOW_NAME, cycle_id, settings) as run:

        def attempt() -> CycleReport:
            account = fetch_account(settings)
            emit_coordinator_events(settings)
            if account.coordinator is CoordinatorState.HALTED:
                why = "coordinator is HALTED: no trading cycle runs until it is resumed with confirmation"
                logger.warning("%s: %s", cycle_id, why)
                run.status = "skipped"
                return Completed(name="Skipped", message=why, data=skipped_report(cycle_id, at, account, why))  # type: ignore[return-value]
            report, result = _run(settings, at, cycle_id, started, account)
            emit_coordinator_events(settings)
            emit_degradation_events(result.degradation_changes)
            publish_artifacts(report)
            return report

        return commit_or_settle(attempt, lambda: stored_report(cycle_id, settings), cycle_id)


def stored_report(cycle_id: str, settings: Settings) -> CycleReport | None:
    """The report of a cycle that already ran, marked as read back."""
    stored = find_report(cycle_id, settings)
    return stored.model_copy(update={"replayed": True}) if stored is not None else None


def _run(
    settings: Settings, at: datetime, cycle_id: str, started: datetime, account: AccountState
) -> tuple[CycleReport, Coordination]:
    """The cycle proper, at the account's degradation level; committed in one transaction at the end."""
    level = account.health.level
    failures = fetch_unreported_failures(settings)
    changes = fetch_unpublished_changes(settings)
    notices = [record.describe() for _, record in failures]
    setup = llm_setup(settings) if level.uses_llms else None
    if not level.uses_llms:
        notices.append(f"degradation {level}: no model is called; the offline model decides")
    voting = _llm_voting(settings, account, cycle_id, setup)
    sentiments: dict[str, SentimentReport] = {}
    if level.uses_sentiment:
        sentiments = fetch_sentiments(settings.market.symbols, at, settings)
    else:
        notices.append(f"degradation {level}: sentiment skipped")
    analyses = _analyze(settings, at, account, voting, sentiments)
    if cycle_status(analyses) is CycleStatus.FAILED:
        raise CycleError("every symbol failed: " + "; ".join(a.error or "" for a in analyses))
    llm = voting[0].result() if voting else LLMRunResult(breakers=account.llm_breakers)
    health = [*api_outcomes(analyses), *llm_outcomes(llm.records)]
    to_model, resolutions = triage(find_conflicts(analyses, account.positions, settings), level)
    if to_model:
        resolved = _resolve(to_model, analyses, settings, llm, setup, cycle_id)
        asked = setup is not None and bool(setup.chain(settings.llm.resolution_chain))
        fell_back = any(r.decided_by == FALLBACK_BY for r in resolved.resolutions)
        health += resolution_outcomes(asked, fell_back, resolved.llm.records)
        resolutions, llm = [*resolutions, *resolved.resolutions], llm.merged(resolved.llm)
    notices += [_budget_notice(e) for e in llm.events]
    result = coordinate_signals(
        cycle_id, at, account, analyses, settings, notices, resolutions, [c for _, c in changes], health
    )
    cost = sum((r.cost_usd for r in llm.records), Decimal(0))
    report = build_report(cycle_id, at, started, analyses, result, settings, cost)
    persist_cycle(
        report, analyses, result, account, llm, [i for i, _ in changes], settings, [i for i, _ in failures]
    )
    return report, result


def publish_artifacts(
    report: CycleReport, key: str = ARTIFACT_KEY, positions_key: str = POSITIONS_ARTIFACT_KEY
) -> None:
    """The run's markdown report and its positions-and-allocation table, in the Prefect UI."""
    create_markdown_artifact(key=key, markdown=render_markdown(report), description=report.cycle_id)
    create_table_artifact(
        key=positions_key,
        table=allocation_rows(report.portfolio),
        description=f"{report.cycle_id}: positions and allocation",
    )


def _llm_voting(
    settings: Settings, account: AccountState, cycle_id: str, setup: LLMSetup | None
) -> tuple[LLMGateway, list[ProviderConfig]] | None:
    """The run's LLM gateway and voting models when models vote on trades; None keeps the offline model."""
    models = setup.chain(settings.llm.decision_models) if setup else []
    if setup is None or not models:
        return None
    return gateway_for(settings, account.llm_breakers, setup.spent_today, cycle_id), models


def _resolve(
    conflicts: list[Conflict],
    analyses: list[SymbolAnalysis],
    settings: Settings,
    llm: LLMRunResult,
    setup: LLMSetup | None,
    cycle_id: str,
) -> ResolutionRun:
    """The conflict-resolution subflow, seeded with the breakers and spending of the run so far."""
    signals = {a.symbol: a.signal for a in analyses if a.signal is not None}
    chain = setup.chain(settings.llm.resolution_chain) if setup else []
    spent_cycle = sum((r.cost_usd for r in llm.records), Decimal(0))
    spent_today = setup.spent_today if setup else Decimal(0)
    return run_sync(
        resolve_conflicts(
            conflicts, signals, settings, chain, llm.breakers, cycle_id, spent_today, spent_cycle
        )
    )


def _analyze(
    settings: Settings,
    at: datetime,
    account: AccountState,
    voting: tuple[LLMGateway, list[ProviderConfig]] | None,
    sentiments: dict[str, SentimentReport],
) -> list[SymbolAnalysis]:
    """Submit every symbol's agent chain at once; collect them, turning data errors into skipped symbols."""
    chains = []
    for symbol in settings.market.symbols:
        snapshot = fetch_snapshot.submit(symbol, at, settings)
        technical = analyze_technicals.submit(snapshot, settings)
        regime = assess_regime.submit(snapshot, technical, account.regimes.get(symbol), settings)
        if voting is None:
            signal = decide.submit(snapshot, technical, regime, settings)
        else:
            sentiment = sentiments.get(symbol)
            signal = decide_with_llms.submit(snapshot, technical, regime, settings, *voting, sentiment)
        chains.append((symbol, snapshot, technical, regime, signal))
    return [replace(_collect(*chain), sentiment=sentiments.get(chain[0])) for chain in chains]


def _budget_notice(event: BudgetExhausted) -> str:
    return (
        f"LLM {event.scope} budget of {event.limit_usd} USD spent ({event.spent_usd:.4f} USD): "
        "the offline model decided instead"
    )


def _collect(
    symbol: str,
    snapshot: PrefectFuture[MarketSnapshot],
    *rest: PrefectFuture[object],
) -> SymbolAnalysis:
    outcome = snapshot.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        for future in rest:
            future.wait()
        unavailable = isinstance(outcome, MarketDataUnavailable) or not isinstance(outcome, MarketDataError)
        return SymbolAnalysis(symbol=symbol, error=str(outcome), data_unavailable=unavailable)
    technical, regime, signal = (f.result() for f in rest)
    return SymbolAnalysis(symbol, outcome, technical, regime, signal)  # type: ignore[arg-type]


def default_cycle_time(settings: Settings) -> datetime:
    """Now for a live source; for a replay, the end of its data (the newest hour every symbol has)."""
    source = market_source(settings)
    if isinstance(source, ReplaySource):
        return source.end(settings.market.symbols)
    return datetime.now(UTC)
