"""One trading cycle in plain Python: analysis per symbol, then coordination, then the typed report.

The Prefect flow runs the same steps as tasks; backtests and benchmarks call `run_cycle` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from triplegain.agents.decision import aggregate_votes, offline_vote
from triplegain.agents.regime import assess_regime
from triplegain.agents.technical import analyze_technicals
from triplegain.conflicts import detect_conflicts
from triplegain.coordinator import AccountState, Coordination, SymbolAnalysis, api_outcomes, coordinate
from triplegain.errors import MarketDataError, MarketDataUnavailable
from triplegain.indicators import compute_indicators
from triplegain.market.source import MarketDataSource, build_snapshot
from triplegain.models.analysis import RegimeAssessment, RegimeState, TechnicalReport
from triplegain.models.conflicts import Conflict, Resolution
from triplegain.models.cycle import CycleReport
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import CycleStatus
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import Portfolio, Position
from triplegain.rebalance import RebalanceTrade
from triplegain.resolution import conservative, triage
from triplegain.settings import Settings


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
    indicators = compute_indicators(snapshot.candles, settings.indicators)
    return analyze_technicals(snapshot, indicators, settings.technical)


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


Decider = Callable[[MarketSnapshot, TechnicalReport, RegimeAssessment], TradingSignal]
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
) -> SymbolAnalysis:
    """Snapshot, technical analysis, regime and decision for one symbol; a data problem skips it.

    `decider` replaces the offline decision (a backtest replaying recorded model answers passes one).
    """
    try:
        snapshot = build_snapshot(source, symbol, at, settings.market)
    except MarketDataError as e:
        return SymbolAnalysis(
            symbol=symbol, error=str(e), data_unavailable=isinstance(e, MarketDataUnavailable)
        )
    technical = technical_step(snapshot, settings)
    regime = regime_step(snapshot, technical, previous, settings)
    if decider is not None:
        signal = decider(snapshot, technical, regime)
    else:
        signal = decision_step(snapshot, technical, regime, settings)
    return SymbolAnalysis(symbol, snapshot, technical, regime, signal)


def find_conflicts(
    analyses: list[SymbolAnalysis], positions: list[Position], settings: Settings
) -> list[Conflict]:
    """Every conflict of the cycle, symbol by symbol."""
    found = []
    for a in analyses:
        if a.signal is not None:
            found += detect_conflicts(
                a.signal, a.technical, a.regime, a.sentiment, positions, settings.conflicts
            )
    return found


def cycle_status(analyses: list[SymbolAnalysis]) -> CycleStatus:
    """Completed when every symbol was analysed, partial when some were, failed when none was."""
    failed = sum(a.error is not None for a in analyses)
    if failed == 0:
        return CycleStatus.COMPLETED
    return CycleStatus.FAILED if failed == len(analyses) else CycleStatus.PARTIAL


def build_report(
    cycle_id: str,
    at: datetime,
    started_at: datetime,
    analyses: list[SymbolAnalysis],
    result: Coordination,
    settings: Settings,
    llm_cost_usd: Decimal = Decimal(0),
) -> CycleReport:
    """The typed report of a finished cycle."""
    signals = [a.signal for a in analyses if a.signal is not None]
    return CycleReport(
        cycle_id=cycle_id,
        timestamp=at,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        status=cycle_status(analyses),
        decided_by=signals[0].decided_by if signals else "none",
        symbols=result.outcomes,
        portfolio=result.portfolio,
        starting_equity=result.starting_equity,
        events=result.events,
        messages=len(result.messages),
        dead_letters=len(result.dead_letters),
        llm_cost_usd=llm_cost_usd,
        degradation=result.health.level,
    )


def skipped_report(cycle_id: str, at: datetime, account: AccountState, reason: str) -> CycleReport:
    """The report of a cycle that did not run (coordinator HALTED): the account as it stands, and why."""
    now = datetime.now(UTC)
    portfolio = Portfolio(balances=account.balances, prices={}, positions=account.positions, as_of=at)
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
        events=[reason],
    )


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

    Like the flow: conflicts are detected and resolved (by `resolver`, for the conflicts the account's
    degradation level lets a model see; the rest by rule), then coordinated. `rebalance` are DCA batch
    trades due at this hour, made after the symbols' own trades.
    """
    started = datetime.now(UTC)
    at = normalize_at(at)
    cycle_id = cycle_id_for(at)
    analyses = [
        analyze_symbol(source, s, at, account.regimes.get(s), settings, decider)
        for s in settings.market.symbols
    ]
    to_model, resolutions = triage(
        find_conflicts(analyses, account.positions, settings), account.health.level
    )
    if to_model:
        signals = {a.symbol: a.signal for a in analyses if a.signal is not None}
        resolutions += resolver(to_model, signals)
    result = coordinate(
        cycle_id,
        at,
        account,
        analyses,
        settings,
        resolutions=resolutions,
        health=api_outcomes(analyses),
        rebalance=rebalance,
    )
    return build_report(cycle_id, at, started, analyses, result, settings), result
