"""One trading cycle, assembled once: analysis per symbol, triage and resolution of conflicts,
coordination, the typed report.

`assemble_cycle` is the sequence. It runs the steps a flow makes Prefect tasks (analysis, resolution,
coordination) through a `CycleSteps`: the trading-cycle flow passes task-wrapped steps, backtests and
benchmarks pass `PlainSteps` (`run_cycle`). Whatever trades and whatever backtests run the same sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from triplegain.agents.decision import aggregate_votes, offline_vote
from triplegain.agents.regime import assess_regime
from triplegain.agents.registry import run_registered
from triplegain.agents.technical import analyze_technicals
from triplegain.broker import Broker
from triplegain.conflicts import detect_conflicts
from triplegain.control import StateChange
from triplegain.coordinator import coordinate
from triplegain.cycle_types import AccountState, Coordination, CoordinationInput, SymbolAnalysis, api_outcomes
from triplegain.degradation import llm_outcomes, resolution_outcomes
from triplegain.errors import CycleError, MarketDataError, MarketDataUnavailable
from triplegain.indicators import TaSeries, compute_indicators
from triplegain.llm.gateway import BudgetExhausted, LLMRunResult
from triplegain.market.source import MarketDataSource, build_snapshot
from triplegain.models.analysis import (
    AgentReport,
    RegimeAssessment,
    RegimeState,
    SentimentReport,
    TechnicalReport,
)
from triplegain.models.conflicts import Conflict, Resolution
from triplegain.models.cycle import CycleReport
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import CycleStatus, DegradationLevel
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import Portfolio, Position
from triplegain.rebalance import RebalanceTrade
from triplegain.resolution import FALLBACK_BY, conservative, triage
from triplegain.settings import Settings

if TYPE_CHECKING:  # the memo reads markets with `read_market`, from this module
    from triplegain.analysis_memo import AnalysisMemo


def cycle_id_for(at: datetime) -> str:
    """The cycle's identity is its as-of hour: one cycle per hour, however often it is started."""
    return f"cycle-{at.astimezone(UTC):%Y%m%dT%H%MZ}"


def parse_time(value: datetime | str) -> datetime:
    """An ISO-8601 time (or a datetime) in UTC; ValueError, with an example, when malformed or naive."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"time {value!r} is not ISO-8601; use e.g. 2024-06-01T12:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"time {value.isoformat()} has no timezone; give it in UTC, e.g. 2024-06-01T12:00Z")
    return value.astimezone(UTC)


def normalize_at(at: datetime) -> datetime:
    """A cycle time in UTC, floored to the hour (candles close on the hour)."""
    if at.tzinfo is None:
        raise ValueError(
            f"cycle time {at.isoformat()} has no timezone; give it in UTC, e.g. 2024-06-01T12:00Z"
        )
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def technical_step(snapshot: MarketSnapshot, settings: Settings) -> TechnicalReport:
    """Indicators and the technical-analysis report for one snapshot."""
    series = TaSeries(snapshot.candles)
    indicators = compute_indicators(snapshot.candles, settings.indicators, series)
    return analyze_technicals(snapshot, indicators, settings.technical, settings.indicators, series)


def read_market(
    source: MarketDataSource, symbol: str, at: datetime, settings: Settings
) -> tuple[MarketSnapshot, TechnicalReport]:
    """The snapshot of `symbol` at `at` and its offline technical report; MarketDataError when the data is
    too short or too old."""
    snapshot = build_snapshot(source, symbol, at, settings.market)
    return snapshot, technical_step(snapshot, settings)


MarketReader = Callable[[MarketDataSource, str, datetime, Settings], tuple[MarketSnapshot, TechnicalReport]]


def regime_step(
    snapshot: MarketSnapshot, technical: TechnicalReport, previous: RegimeState | None, settings: Settings
) -> RegimeAssessment:
    """The regime assessment, continuing the symbol's hysteresis state."""
    return assess_regime(snapshot, technical.indicators, previous, settings.regime, settings.technical)


def decision_step(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> TradingSignal:
    """The trading signal: the offline model votes (LLM voters join here later) and votes are aggregated."""
    votes = [offline_vote(snapshot, technical, regime, settings)]
    return aggregate_votes(
        snapshot.symbol, snapshot.timestamp, votes, len(votes), technical, regime, settings.decision
    )


Decider = Callable[
    [MarketSnapshot, TechnicalReport, RegimeAssessment, dict[str, AgentReport], SentimentReport | None],
    TradingSignal,
]
TechnicalModel = Callable[[MarketSnapshot, TechnicalReport], TechnicalReport]
RegimeModel = Callable[
    [MarketSnapshot, TechnicalReport, RegimeState | None, RegimeAssessment], RegimeAssessment
]


@dataclass(frozen=True)
class Analysts:
    """Model-backed agents that take the offline report and give theirs (`agents.llm_analysis`): the
    technical analysis, and the regime given the symbol's hysteresis state and the offline assessment."""

    technical: TechnicalModel | None = None
    regime: RegimeModel | None = None


Resolver = Callable[[list[Conflict], dict[str, TradingSignal]], list[Resolution]]


def resolve_without_models(conflicts: list[Conflict], signals: dict[str, TradingSignal]) -> list[Resolution]:
    """What a cycle without any usable model does with its conflicts: the conservative action."""
    return conservative(conflicts, "no LLM configured for conflict resolution: conservative action")


def analyze_symbol(
    source: MarketDataSource,
    symbol: str,
    at: datetime,
    previous: RegimeState | None,
    settings: Settings,
    decider: Decider | None = None,
    analysts: Analysts | None = None,
    sentiment: SentimentReport | None = None,
    market: MarketReader = read_market,
) -> SymbolAnalysis:
    """Snapshot, technical analysis, regime, the registered agents and the decision for one symbol; a data
    problem skips it.

    `decider` replaces the offline decision and `analysts` the offline technical analysis and regime (a
    backtest replaying recorded model answers passes them); `sentiment` is what the decider is shown (the
    still-valid report, as a flow's voters see it); `market` reads the snapshot and the offline technical
    report (`read_market`; a backtest's `AnalysisMemo` reuses earlier reads).
    """
    try:
        snapshot, technical = market(source, symbol, at, settings)
    except MarketDataError as e:
        return SymbolAnalysis(
            symbol=symbol, error=str(e), data_unavailable=isinstance(e, MarketDataUnavailable)
        )
    if analysts is not None and analysts.technical is not None:
        technical = analysts.technical(snapshot, technical)
    regime = regime_step(snapshot, technical, previous, settings)
    if analysts is not None and analysts.regime is not None:
        regime = analysts.regime(snapshot, technical, previous, regime)
    reports = run_registered(snapshot, technical, regime, settings)
    if decider is not None:
        signal = decider(snapshot, technical, regime, reports, sentiment)
    else:
        signal = decision_step(snapshot, technical, regime, settings)
    return SymbolAnalysis(symbol, snapshot, technical, regime, signal, reports=reports)


def find_conflicts(
    analyses: Sequence[SymbolAnalysis], positions: list[Position], settings: Settings
) -> list[Conflict]:
    """Every conflict of the cycle, symbol by symbol."""
    found = []
    for a in analyses:
        if a.signal is not None:
            found += detect_conflicts(
                a.signal, a.technical, a.regime, a.sentiment, positions, settings.conflicts
            )
    return found


def cycle_status(analyses: Sequence[SymbolAnalysis]) -> CycleStatus:
    """Completed when every symbol was analysed, partial when some were, failed when none was."""
    failed = sum(a.error is not None for a in analyses)
    if failed == 0:
        return CycleStatus.COMPLETED
    return CycleStatus.FAILED if failed == len(analyses) else CycleStatus.PARTIAL


def build_report(
    cycle_id: str,
    at: datetime,
    started_at: datetime,
    analyses: Sequence[SymbolAnalysis],
    result: Coordination,
    llm_cost_usd: Decimal = Decimal(0),
    decided_by: str | None = None,
) -> CycleReport:
    """The typed report of a finished run (`decided_by` names who decided when no signal says it)."""
    signals = [a.signal for a in analyses if a.signal is not None]
    return CycleReport(
        cycle_id=cycle_id,
        timestamp=at,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        status=cycle_status(analyses),
        decided_by=decided_by or (signals[0].decided_by if signals else "none"),
        symbols=result.outcomes,
        portfolio=result.portfolio,
        starting_equity=result.starting_equity,
        notes=result.notes,
        messages=len(result.messages),
        dead_letters=len(result.dead_letters),
        llm_cost_usd=llm_cost_usd,
        degradation=result.health.level,
        hodl_bags=result.hodl.amounts(),
        hodl_pending_usd=result.hodl.pending_usd(),
    )


def behind_the_account(at: datetime, account: AccountState) -> str | None:
    """Why a run at market time `at` must not touch the account, or None. An account only moves forward:
    once a run settled it in a later hour, a run for an earlier hour (a backfill, a queued run started late)
    would trade and mark at candles older than those it already holds. Within one hour every run sees the
    same closed candle, so a cycle that starts after that hour's market watch still runs."""
    if account.marked_at is None or normalize_at(at) >= normalize_at(account.marked_at):
        return None
    return (
        f"the account was settled in the hour of {account.marked_at:%Y-%m-%d %H:%M} UTC (market time), "
        f"after {at:%Y-%m-%d %H:%M}: an account only moves forward, so this run changes nothing"
    )


def skipped_report(
    cycle_id: str, at: datetime, account: AccountState, reason: str, prices: dict[str, Decimal] | None = None
) -> CycleReport:
    """The report of a cycle that did not run (coordinator HALTED): the account as it stands, valued at
    `prices` (by symbol), and why. Without a price, an asset is named as unvalued rather than counted as 0."""
    now = datetime.now(UTC)
    prices = prices or {}
    portfolio = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at)
    unvalued = portfolio.unpriced_assets
    notes = [reason] + ([f"no price for {', '.join(unvalued)}: left out of the equity"] if unvalued else [])
    return CycleReport(
        cycle_id=cycle_id,
        timestamp=at,
        started_at=now,
        finished_at=now,
        status=CycleStatus.SKIPPED,
        decided_by="none",
        symbols=[],
        portfolio=portfolio,
        starting_equity=portfolio.equity,
        notes=notes,
    )


@dataclass(frozen=True)
class CyclePlan:
    """What a cycle starts from: its identity and time, the account, and what the run loaded for it.

    `notices` are report lines from before the cycle (failed runs, degradation); `state_changes` pauses,
    resumes and halts since the last cycle; `rebalance` DCA trades due this hour; `require_analysis` fails
    the cycle (CycleError) when no symbol could be analysed, as a scheduled run does (a backtest records
    the hour instead).
    """

    cycle_id: str
    at: datetime
    started_at: datetime
    account: AccountState
    sentiments: dict[str, SentimentReport] = field(default_factory=dict)
    notices: Sequence[str] = ()
    state_changes: Sequence[StateChange] = ()
    rebalance: Sequence[RebalanceTrade] = ()
    require_analysis: bool = False


@dataclass(frozen=True)
class ResolutionRun:
    """The resolution step's result: one resolution per conflicted symbol, its LLM use, and whether any
    model was asked at all."""

    resolutions: list[Resolution]
    llm: LLMRunResult
    asked: bool = False


@dataclass(frozen=True)
class CycleRun:
    """An assembled cycle: its report, the coordination behind it, the analyses and the LLM use to persist."""

    report: CycleReport
    result: Coordination
    analyses: list[SymbolAnalysis]
    llm: LLMRunResult


class CycleSteps(Protocol):
    """The steps a flow runs as Prefect tasks; `PlainSteps` runs them as plain calls."""

    def analyze(self, plan: CyclePlan) -> tuple[list[SymbolAnalysis], LLMRunResult]:
        """Every symbol's snapshot, technical analysis, regime and signal, and the LLM use of the votes."""
        ...

    def resolve(
        self, conflicts: list[Conflict], analyses: list[SymbolAnalysis], llm: LLMRunResult
    ) -> ResolutionRun:
        """Resolve the conflicts a model may see (`llm` is the cycle's LLM use so far)."""
        ...

    def coordinate(self, request: CoordinationInput) -> Coordination:
        """Exits, risk verdicts and orders for every analysed symbol."""
        ...


def assemble_cycle(plan: CyclePlan, steps: CycleSteps, settings: Settings) -> CycleRun:
    """The cycle: analysis, conflicts triaged by the degradation level and resolved, coordination, report."""
    analyses, llm = steps.analyze(plan)
    if plan.require_analysis and cycle_status(analyses) is CycleStatus.FAILED:
        raise CycleError("every symbol failed: " + "; ".join(a.error or "" for a in analyses))
    outcomes = [*api_outcomes(analyses), *llm_outcomes(llm.records)]
    level = plan.account.health.level
    to_model, resolutions = triage(find_conflicts(analyses, plan.account.positions, settings), level)
    if to_model:
        resolved = steps.resolve(to_model, analyses, llm)
        fell_back = any(r.decided_by == FALLBACK_BY for r in resolved.resolutions)
        outcomes += resolution_outcomes(resolved.asked, fell_back, resolved.llm.records)
        resolutions, llm = [*resolutions, *resolved.resolutions], llm.merged(resolved.llm)
    notices = [*plan.notices, *(budget_notice(e) for e in llm.events)]
    request = CoordinationInput(
        run_id=plan.cycle_id,
        at=plan.at,
        account=plan.account,
        analyses=analyses,
        notices=notices,
        resolutions=resolutions,
        state_changes=plan.state_changes,
        outcomes=outcomes,
        rebalance=plan.rebalance,
    )
    result = steps.coordinate(request)
    cost = sum((r.cost_usd for r in llm.records), Decimal(0))
    report = build_report(plan.cycle_id, plan.at, plan.started_at, analyses, result, cost)
    return CycleRun(report, result, analyses, llm)


def with_sentiment(
    analyses: Sequence[SymbolAnalysis], sentiments: dict[str, SentimentReport]
) -> list[SymbolAnalysis]:
    """Each analysis with its symbol's still-valid sentiment, where there is one."""
    return [replace(a, sentiment=sentiments.get(a.symbol)) for a in analyses]


def signals_of(analyses: Sequence[SymbolAnalysis]) -> dict[str, TradingSignal]:
    """Each analysed symbol's signal."""
    return {a.symbol: a.signal for a in analyses if a.signal is not None}


def budget_notice(event: BudgetExhausted) -> str:
    """The report line of a spent LLM budget."""
    return (
        f"LLM {event.scope} budget of {event.limit_usd} USD spent ({event.spent_usd:.4f} USD): "
        "the offline model decided instead"
    )


def degradation_notices(level: DegradationLevel) -> list[str]:
    """What the degradation level leaves out of a cycle, for its report."""
    notices = []
    if not level.uses_llms:
        notices.append(f"degradation {level}: no model is called; the offline model decides")
    if not level.uses_sentiment:
        notices.append(f"degradation {level}: sentiment skipped")
    return notices


@dataclass(frozen=True)
class PlainSteps:
    """The cycle's steps as plain calls, symbols one after another (backtests, benchmarks).

    `decider` replaces the offline decision, `resolver` resolves conflicts and `analysts` replace the
    offline technical analysis and regime (a backtest replaying recorded model answers passes them); their
    model use is not persisted, so it reports none. `broker` makes the broker a pass trades on from the
    account (an exchange broker on a live account); the paper broker when None. `memo` reuses the analyses
    of earlier backtests on the same source (`triplegain.analysis_memo`).
    """

    source: MarketDataSource
    settings: Settings
    decider: Decider | None = None
    resolver: Resolver = resolve_without_models
    analysts: Analysts | None = None
    broker: Callable[[AccountState], Broker] | None = None  # the paper broker when None

    memo: AnalysisMemo | None = None

    def analyze(self, plan: CyclePlan) -> tuple[list[SymbolAnalysis], LLMRunResult]:
        """Each symbol in configured order."""
        analyses = [self._analyze(plan, s) for s in self.settings.market.symbols]
        return with_sentiment(analyses, plan.sentiments), LLMRunResult(breakers=plan.account.llm_breakers)

    def _analyze(self, plan: CyclePlan, symbol: str) -> SymbolAnalysis:
        """One symbol; with a memo, the market read reused, and the whole analysis when no model takes part
        (the sentiment is shown only to a decider)."""
        previous, memo = plan.account.regimes.get(symbol), self.memo

        def analyze() -> SymbolAnalysis:
            return analyze_symbol(
                self.source,
                symbol,
                plan.at,
                previous,
                self.settings,
                self.decider,
                self.analysts,
                plan.sentiments.get(symbol),
                read_market if memo is None else memo.reader,
            )

        if memo is None or self.decider is not None or self.analysts is not None:
            return analyze()
        return memo.analysis(symbol, plan.at, previous, analyze)

    def resolve(
        self, conflicts: list[Conflict], analyses: list[SymbolAnalysis], llm: LLMRunResult
    ) -> ResolutionRun:
        """The resolver's answer."""
        return ResolutionRun(self.resolver(conflicts, signals_of(analyses)), LLMRunResult())

    def coordinate(self, request: CoordinationInput) -> Coordination:
        """The coordinator, called directly, on the broker made for the account."""
        broker = self.broker(request.account) if self.broker is not None else None
        return coordinate(request, self.settings, broker)


def run_cycle(
    source: MarketDataSource,
    account: AccountState,
    at: datetime,
    settings: Settings,
    rebalance: Sequence[RebalanceTrade] = (),
    decider: Decider | None = None,
    resolver: Resolver = resolve_without_models,
) -> tuple[CycleReport, Coordination]:
    """A whole cycle without Prefect or a database: what backtests and benchmarks drive.

    `rebalance` are DCA batch trades due at this hour, made after the symbols' own trades.
    """
    at = normalize_at(at)
    plan = CyclePlan(cycle_id_for(at), at, datetime.now(UTC), account, rebalance=rebalance)
    run = assemble_cycle(plan, PlainSteps(source, settings, decider, resolver), settings)
    return run.report, run.result
