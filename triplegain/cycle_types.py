"""The cycle's value types: the account a run starts from, each symbol's analysis, what the coordinator is
asked and what it decided, and the account it leaves for the next run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from triplegain.bus import DeadLetter, Message
from triplegain.control import StateChange
from triplegain.degradation import DegradationChanged, Health, HealthOutcome, HealthUpdate
from triplegain.exposure import Ceilings
from triplegain.hodl import HodlEntry, HodlState
from triplegain.llm.breaker import ProviderBreaker
from triplegain.models.analysis import (
    AgentReport,
    RegimeAssessment,
    RegimeState,
    SentimentReport,
    TechnicalReport,
)
from triplegain.models.conflicts import Resolution
from triplegain.models.cycle import SymbolOutcome
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import CoordinatorState
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import Portfolio, Position
from triplegain.rebalance import RebalanceTrade
from triplegain.risk.state import RiskState
from triplegain.settings import Settings


@dataclass(frozen=True)
class AccountState:
    """Cross-run state loaded at the start of a run (a fresh account when nothing is stored)."""

    coordinator: CoordinatorState
    balances: dict[str, Decimal]
    positions: list[Position]
    risk: RiskState | None
    regimes: dict[str, RegimeState]
    version: int = 0
    last_cycle_at: datetime | None = None
    marked_at: datetime | None = None  # the market time of the newest run that moved it (cycle or watch)
    llm_breakers: dict[str, ProviderBreaker] = field(default_factory=dict)
    health: Health = field(default_factory=Health)
    state_set_by: str | None = None
    hodl: HodlState = field(default_factory=HodlState)


def fresh_account(settings: Settings) -> AccountState:
    """A new paper account: the initial balances, nothing open, no memory."""
    return AccountState(CoordinatorState.RUNNING, dict(settings.broker.initial_balances), [], None, {})


@dataclass(frozen=True)
class SymbolAnalysis:
    """The analysis half of a cycle for one symbol, or why it could not be done."""

    symbol: str
    snapshot: MarketSnapshot | None = None
    technical: TechnicalReport | None = None
    regime: RegimeAssessment | None = None
    signal: TradingSignal | None = None
    error: str | None = None
    sentiment: SentimentReport | None = None
    data_unavailable: bool = False
    reports: dict[str, AgentReport] = field(default_factory=dict)  # of the registered analysis agents


@dataclass(frozen=True)
class CoordinationInput:
    """What a run hands the coordinator.

    `notices` are lines earlier steps want the report to say (e.g. the LLM budget ran out); `resolutions`
    how the run's conflicts were resolved (at most one per symbol); `state_changes` pauses, resumes and
    halts recorded since the last cycle, published as bus events; `outcomes` the run's LLM and market-data
    outcomes, which move the degradation level; `rebalance` spot trades to make after the symbols (a DCA
    batch), through the risk engine's rebalance path.
    """

    run_id: str
    at: datetime
    account: AccountState
    analyses: Sequence[SymbolAnalysis]
    notices: Sequence[str] = ()
    resolutions: Sequence[Resolution] = ()
    state_changes: Sequence[StateChange] = ()
    outcomes: Sequence[HealthOutcome] = ()
    rebalance: Sequence[RebalanceTrade] = ()


@dataclass
class Coordination:
    """The decision half of a run: outcomes per symbol, the account after, and what happened."""

    outcomes: list[SymbolOutcome]
    portfolio: Portfolio
    starting_equity: Decimal
    risk: RiskState
    regimes: dict[str, RegimeState]
    health_update: HealthUpdate
    closed_positions: list[Position] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    coordinator: CoordinatorState = CoordinatorState.RUNNING
    state_changes: list[StateChange] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    degradation_changes: list[DegradationChanged] = field(default_factory=list)
    moved_stops: list[Position] = field(default_factory=list)
    ceilings: Ceilings | None = None  # the allocation's exposure ceilings this run (`triplegain.exposure`)
    hodl: HodlState = field(default_factory=HodlState)  # the bags as the run leaves them
    hodl_entries: list[HodlEntry] = field(default_factory=list)  # profit put aside, purchases


def next_account(account: AccountState, result: Coordination) -> AccountState:
    """The account as a run left it, for the next run without a database (backtests, benchmarks)."""
    return replace(
        account,
        balances=result.portfolio.balances,
        positions=result.portfolio.positions,
        risk=result.risk,
        regimes=result.regimes,
        coordinator=result.coordinator,
        health=result.health,
        hodl=result.hodl,
        state_set_by=result.state_changes[-1].actor if result.state_changes else account.state_set_by,
    )


def api_outcomes(analyses: Sequence[SymbolAnalysis]) -> list[HealthOutcome]:
    """Market data fetched counts as an API success, an unreachable source (or a crashed task) a failure.

    Data that arrived but is unusable (stale, too short) says nothing about the API's health.
    """
    outcomes = []
    for a in analyses:
        if a.snapshot is not None:
            outcomes.append(HealthOutcome(kind="api", ok=True, what=f"{a.symbol} market data"))
        elif a.data_unavailable:
            outcomes.append(HealthOutcome(kind="api", ok=False, what=f"{a.symbol}: {a.error}"[:200]))
    return outcomes
