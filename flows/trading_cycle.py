"""The trading cycle as a Prefect flow: each agent a task, symbols concurrently, one commit at the end.

The cycle itself is `triplegain.cycle.assemble_cycle`, the same sequence a backtest runs; this flow loads
what it needs, gives it task-wrapped steps (`TaskSteps`), and commits what it decided.

From a notebook:

    from flows.trading_cycle import trading_cycle
    report = trading_cycle(at="2024-06-01T12:00Z")
    report.outcome("BTC/USDT").signal
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from flows.conflict_resolution import resolve_conflicts
from flows.live import live_account_turn, live_keys, reconciled
from flows.llm_setup import LLMSetup, gateway_for, llm_setup
from flows.runs import default_cycle_time, price_snapshots, publish_artifacts, stored_report
from flows.settings import load_run_settings
from flows.tracking import commit_or_settle, name_run, run_name, skip, tracked_run
from tasks.agents import (
    analyze_technicals,
    analyze_technicals_with_llm,
    assess_regime,
    assess_regime_with_llm,
    decide,
    decide_with_llms,
    run_agent,
)
from tasks.coordination import coordinate
from tasks.events import emit_coordinator_events, emit_degradation_events
from tasks.live import emit_urgent_events
from tasks.market import fetch_snapshot
from tasks.storage import (
    load_account,
    load_sentiments,
    load_unpublished_changes,
    load_unreported_failures,
    prepare_database,
    save_cycle,
)
from triplegain.agents import registry
from triplegain.aio import run_sync
from triplegain.cycle import (
    CyclePlan,
    CycleRun,
    ResolutionRun,
    assemble_cycle,
    behind_the_account,
    cycle_id_for,
    degradation_notices,
    normalize_at,
    parse_time,
    signals_of,
    skipped_report,
    with_sentiment,
)
from triplegain.cycle_types import AccountState, Coordination, CoordinationInput, SymbolAnalysis
from triplegain.errors import CycleError, MarketDataError, MarketDataUnavailable
from triplegain.live_gate import ExchangeKeys
from triplegain.llm.gateway import LLMGateway, LLMRunResult
from triplegain.llm.models import ProviderConfig
from triplegain.models.analysis import AgentReport
from triplegain.models.conflicts import Conflict
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CoordinatorState
from triplegain.settings import Settings
from triplegain.storage.cycles import CycleRecord

ARTIFACT_KEY = "trading-cycle-report"
POSITIONS_ARTIFACT_KEY = "trading-cycle-positions"
FLOW_NAME = "trading-cycle"
Voting = tuple[LLMGateway, list[ProviderConfig]]


def _cycle_time(at: datetime | str | None, settings: Settings) -> datetime:
    return normalize_at(parse_time(at) if at is not None else default_cycle_time(settings))


def _cycle_name(parameters: dict[str, Any]) -> str:
    settings = load_run_settings(parameters.get("config_file"), parameters.get("symbols"))
    return cycle_id_for(_cycle_time(parameters.get("at"), settings))


@flow(name=FLOW_NAME, log_prints=False, flow_run_name=run_name(_cycle_name))
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
    at = _cycle_time(at, settings)
    cycle_id = cycle_id_for(at)
    name_run(cycle_id)
    started = datetime.now(UTC)
    logger.info("cycle %s, database %s", cycle_id, prepare_database(settings))
    stored = stored_report(cycle_id, settings)
    if stored is not None:
        logger.info("%s already ran; returning its stored report, placing no order", cycle_id)
        ran = [o.symbol for o in stored.symbols]
        if symbols and set(symbols) != set(ran):
            logger.warning(
                "%s already ran for %s: one cycle per hour, so --symbols %s is not run again; this is the "
                "stored report",
                cycle_id,
                ", ".join(ran),
                ",".join(symbols),
            )
        return stored
    with tracked_run(FLOW_NAME, cycle_id, settings) as run:

        def attempt() -> CycleReport:
            account = load_account(settings)
            emit_coordinator_events(settings)
            behind = behind_the_account(at, account)
            if behind is not None or account.coordinator is CoordinatorState.HALTED:
                why = (
                    behind
                    or "coordinator is HALTED: no trading cycle runs until it is resumed with confirmation"
                )
                return skip(run, skipped_report(cycle_id, at, account, why, _prices(settings, at)), why)
            keys = live_keys(settings)
            if keys is not None:
                reconciliation = reconciled(settings, keys, account, cycle_id)
                if not reconciliation.trading_allowed:
                    why = "reconciliation found what it cannot explain: no trading this run"
                    report = skipped_report(
                        cycle_id, at, account, f"{why}\n{reconciliation.report()}", _prices(settings, at)
                    )
                    return skip(run, report.model_copy(update={"mode": "live"}), why)
            cycle = _run(settings, at, cycle_id, started, account, run.id, keys)
            if keys is not None:
                emit_urgent_events(cycle.report.notes, cycle_id)
            emit_coordinator_events(settings)
            emit_degradation_events(cycle.result.degradation_changes)
            publish_artifacts(cycle.report, ARTIFACT_KEY, POSITIONS_ARTIFACT_KEY)
            return cycle.report

        with live_account_turn(settings, cycle_id):
            return commit_or_settle(attempt, lambda: stored_report(cycle_id, settings), cycle_id)


def _prices(settings: Settings, at: datetime) -> dict[str, Decimal]:
    """The symbols' last prices, to value a skipped cycle's account (what is missing stays unvalued)."""
    try:
        analyses = price_snapshots(settings, at, settings.market.symbols)
    except CycleError:
        return {}
    return {a.symbol: a.snapshot.current_price for a in analyses if a.snapshot is not None}


def _run(
    settings: Settings,
    at: datetime,
    cycle_id: str,
    started: datetime,
    account: AccountState,
    run_id: int,
    keys: ExchangeKeys | None = None,
) -> CycleRun:
    """The cycle at the account's degradation level, committed in one transaction at the end; on the
    exchange with `keys` (a live account, reconciled), on paper otherwise."""
    level = account.health.level
    failures = load_unreported_failures(settings)
    changes = load_unpublished_changes(settings)
    setup = llm_setup(settings) if level.uses_llms else None
    steps = TaskSteps(settings, setup, _voting(settings, account, cycle_id, setup), cycle_id, keys)
    plan = CyclePlan(
        cycle_id=cycle_id,
        at=at,
        started_at=started,
        account=account,
        sentiments=load_sentiments(settings.market.symbols, at, settings) if level.uses_sentiment else {},
        notices=[*(record.describe() for _, record in failures), *degradation_notices(level)],
        state_changes=[change for _, change in changes],
        require_analysis=True,
    )
    cycle = assemble_cycle(plan, steps, settings)
    if keys is not None:
        cycle = replace(cycle, report=cycle.report.model_copy(update={"mode": "live"}))
    record = CycleRecord(
        cycle.report,
        cycle.analyses,
        cycle.result,
        account,
        cycle.llm,
        published_changes=tuple(i for i, _ in changes),
        reported_runs=tuple(i for i, _ in failures),
        flow_run_id=run_id,
    )
    save_cycle(record, settings)
    return cycle


def _voting(
    settings: Settings, account: AccountState, cycle_id: str, setup: LLMSetup | None
) -> Voting | None:
    """The run's LLM gateway and voting models when models vote on trades or analyse (the voting models may
    be none); None keeps every agent offline."""
    models = setup.chain(settings.llm.decision_models) if setup else []
    analysts = _analyst(setup, settings.llm.technical_model), _analyst(setup, settings.llm.regime_model)
    if setup is None or not (models or any(analysts)):
        return None
    return gateway_for(settings, account.llm_breakers, setup.spent_today, cycle_id), models


def _analyst(setup: LLMSetup | None, name: str | None) -> ProviderConfig | None:
    """The usable provider of a model-backed analysis agent, if configured."""
    if setup is None or name is None:
        return None
    chain = setup.chain([name])
    return chain[0] if chain else None


@dataclass(frozen=True)
class TaskSteps:
    """The cycle's steps as Prefect tasks: every symbol's agent chain submitted at once, conflicts in the
    resolution subflow, coordination as a task."""

    settings: Settings
    setup: LLMSetup | None
    voting: Voting | None
    cycle_id: str
    keys: ExchangeKeys | None = None  # a live account's: coordination trades on the exchange

    def analyze(self, plan: CyclePlan) -> tuple[list[SymbolAnalysis], LLMRunResult]:
        """Submit every symbol's chain; collect them, turning data errors into skipped symbols."""
        settings, chains = self.settings, []
        gateway = self.voting[0] if self.voting is not None else None
        technical_model = _analyst(self.setup, settings.llm.technical_model)
        regime_model = _analyst(self.setup, settings.llm.regime_model)
        for symbol in settings.market.symbols:
            snapshot = fetch_snapshot.submit(symbol, plan.at, settings)
            previous = plan.account.regimes.get(symbol)
            if gateway is not None and technical_model is not None:
                technical = analyze_technicals_with_llm.submit(snapshot, settings, gateway, technical_model)
            else:
                technical = analyze_technicals.submit(snapshot, settings)
            if gateway is not None and regime_model is not None:
                regime = assess_regime_with_llm.submit(
                    snapshot, technical, previous, settings, gateway, regime_model
                )
            else:
                regime = assess_regime.submit(snapshot, technical, previous, settings)
            reports = {
                a.name: run_agent.submit(a.name, symbol, snapshot, technical, regime, settings)
                for a in registry.ANALYSIS_AGENTS
            }
            if self.voting is None or not self.voting[1]:
                signal = decide.submit(snapshot, technical, regime, settings)
            else:
                sentiment = plan.sentiments.get(symbol)
                signal = decide_with_llms.submit(
                    snapshot, technical, regime, settings, *self.voting, sentiment, reports
                )
            chains.append((symbol, reports, snapshot, technical, regime, signal))
        analyses = with_sentiment([_collect(*chain) for chain in chains], plan.sentiments)
        llm = self.voting[0].result() if self.voting else LLMRunResult(breakers=plan.account.llm_breakers)
        return analyses, llm

    def resolve(
        self, conflicts: list[Conflict], analyses: list[SymbolAnalysis], llm: LLMRunResult
    ) -> ResolutionRun:
        """The conflict-resolution subflow, seeded with the breakers and spending of the run so far."""
        chain = self.setup.chain(self.settings.llm.resolution_chain) if self.setup else []
        spent_cycle = sum((r.cost_usd for r in llm.records), Decimal(0))
        spent_today = self.setup.spent_today if self.setup else Decimal(0)
        return run_sync(
            resolve_conflicts(
                conflicts,
                signals_of(analyses),
                self.settings,
                chain,
                breakers=llm.breakers,
                cycle_id=self.cycle_id,
                spent_today=spent_today,
                spent_cycle=spent_cycle,
            )
        )

    def coordinate(self, request: CoordinationInput) -> Coordination:
        """The coordinator task (on the exchange for a live account)."""
        return coordinate(request, self.settings, self.keys)


def _collect(
    symbol: str,
    reports: dict[str, PrefectFuture[AgentReport]],
    snapshot: PrefectFuture[object],
    *rest: PrefectFuture[object],
) -> SymbolAnalysis:
    outcome = snapshot.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        for future in [*rest, *reports.values()]:
            future.wait()
        unavailable = isinstance(outcome, MarketDataUnavailable) or not isinstance(outcome, MarketDataError)
        return SymbolAnalysis(symbol=symbol, error=str(outcome), data_unavailable=unavailable)
    technical, regime, signal = (f.result() for f in rest)
    done = {name: future.result() for name, future in reports.items()}
    return SymbolAnalysis(symbol, outcome, technical, regime, signal, reports=done)  # type: ignore[arg-type]
