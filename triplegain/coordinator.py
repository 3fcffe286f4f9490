"""The coordinator: the cycle's events travel on the in-flow bus, and its handlers act on them.

Per symbol, in configured order: stop-loss / take-profit exits found since the last cycle, then the
agents' reports and the trading signal are published; `on_trading_signal` turns the signal into a
proposal, asks the risk engine, sends approved trades to the paper broker and publishes what happened.
Symbols go one after another so each risk check sees the exposure the previous trades created. An audit
subscriber records every message; the cycle persists them (and any dead letters) with everything else.

Circuit breakers act through the broker (reference spec 3.15, its stubs made real): the daily-loss breaker
pauses the coordinator (resumed automatically when it clears at the UTC day change, unless someone changed
the state since), the weekly-loss breaker sells part of every position, and the max-drawdown breaker halts
the coordinator and closes every position it has a price for, run after run until none is left. The
degradation level (triplegain.degradation) moves with the run's LLM and market-data outcomes; in EMERGENCY
no new position is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from pydantic import BaseModel, ValidationError

from triplegain.aio import run_sync
from triplegain.broker.paper import PaperBroker, client_order_id
from triplegain.bus import DeadLetter, ErrorPolicy, Message, MessageBus, Priority, Topic
from triplegain.consensus import apply_consensus, consensus_multiplier
from triplegain.control import CIRCUIT_BREAKER_ACTOR, StateChange
from triplegain.degradation import DegradationChanged, Health, HealthOutcome, record
from triplegain.events import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    ConflictResolved,
    CoordinatorNoticed,
    CoordinatorStateChanged,
    OrderFilled,
    OrderRejected,
    PositionClosed,
    PositionOpened,
    SymbolSkipped,
    TradeApproved,
    TradeRejected,
)
from triplegain.exits import Trailing, find_exit, trailed_stop
from triplegain.llm.breaker import Breaker
from triplegain.models.analysis import RegimeAssessment, RegimeState, SentimentReport, TechnicalReport
from triplegain.models.conflicts import ConflictType, Resolution, ResolutionAction
from triplegain.models.cycle import Execution, SymbolOutcome
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import (
    Action,
    CoordinatorState,
    Intent,
    OrderStatus,
    Side,
    VerdictStatus,
)
from triplegain.models.market import MarketSnapshot, to_decimal
from triplegain.models.trading import (
    QUOTE,
    Portfolio,
    Position,
    RiskReason,
    RiskVerdict,
    TradeProposal,
    split_symbol,
)
from triplegain.rebalance import RebalanceTrade
from triplegain.resolution import apply_modifications
from triplegain.risk.engine import RiskContext, evaluate, evaluate_rebalance
from triplegain.risk.state import (
    Breaker as RiskBreaker,
)
from triplegain.risk.state import (
    BreakerEvent,
    RiskState,
    initial_risk_state,
    mark_equity,
    record_execution,
    record_trade_result,
)
from triplegain.settings import Settings

HUNDRED = Decimal(100)
SOURCE = "coordinator"


@dataclass(frozen=True)
class AccountState:
    """Cross-run state loaded at the start of a cycle (a fresh account when nothing is stored)."""

    coordinator: CoordinatorState
    balances: dict[str, Decimal]
    positions: list[Position]
    risk: RiskState | None
    regimes: dict[str, RegimeState]
    version: int = 0
    last_cycle_at: datetime | None = None
    llm_breakers: dict[str, Breaker] = field(default_factory=dict)
    health: Health = field(default_factory=Health)
    state_set_by: str | None = None


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


@dataclass
class Coordination:
    """The decision half of a cycle: outcomes per symbol, the account after, and what happened."""

    outcomes: list[SymbolOutcome]
    portfolio: Portfolio
    starting_equity: Decimal
    risk: RiskState
    regimes: dict[str, RegimeState]
    closed_positions: list[Position] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    coordinator: CoordinatorState = CoordinatorState.RUNNING
    state_changes: list[StateChange] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    health_outcomes: list[HealthOutcome] = field(default_factory=list)
    degradation_changes: list[DegradationChanged] = field(default_factory=list)
    moved_stops: list[Position] = field(default_factory=list)


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


def unpriced_assets(balances: dict[str, Decimal], prices: dict[str, Decimal]) -> list[str]:
    """Assets held without a price this run (their value would count as zero in the equity)."""
    return [a for a, amount in balances.items() if a != QUOTE and amount > 0 and f"{a}/{QUOTE}" not in prices]


def next_account(account: AccountState, result: Coordination) -> AccountState:
    """The account as a cycle left it, for the next cycle run without a database (backtests, benchmarks)."""
    return replace(
        account,
        balances=result.portfolio.balances,
        positions=result.portfolio.positions,
        risk=result.risk,
        regimes=result.regimes,
        coordinator=result.coordinator,
        health=result.health,
        state_set_by=result.state_changes[-1].actor if result.state_changes else account.state_set_by,
    )


def coordinate(
    cycle_id: str,
    at: datetime,
    account: AccountState,
    analyses: list[SymbolAnalysis],
    settings: Settings,
    notices: Sequence[str] = (),
    resolutions: Sequence[Resolution] = (),
    state_changes: Sequence[StateChange] = (),
    health: Sequence[HealthOutcome] = (),
    rebalance: Sequence[RebalanceTrade] = (),
) -> Coordination:
    """Run exits, risk checks and execution for every analysed symbol, in order (synchronous entry).

    `notices` are things earlier steps want the report to say (e.g. the LLM budget ran out);
    `resolutions` how the cycle's conflicts were resolved (at most one per symbol); `state_changes`
    pauses, resumes and halts recorded since the last cycle, published here as bus events; `health` the
    run's LLM and market-data outcomes (`api_outcomes(analyses)`), which move the degradation level;
    `rebalance` spot trades to make after the symbols (a DCA batch), through the risk engine's rebalance path.
    """
    return run_sync(
        coordinate_async(
            cycle_id, at, account, analyses, settings, notices, resolutions, state_changes, health, rebalance
        )
    )


async def coordinate_async(
    cycle_id: str,
    at: datetime,
    account: AccountState,
    analyses: list[SymbolAnalysis],
    settings: Settings,
    notices: Sequence[str] = (),
    resolutions: Sequence[Resolution] = (),
    state_changes: Sequence[StateChange] = (),
    health: Sequence[HealthOutcome] = (),
    rebalance: Sequence[RebalanceTrade] = (),
) -> Coordination:
    """The cycle's coordination on a fresh in-flow bus, its handlers subscribed."""
    prices = {a.symbol: a.snapshot.current_price for a in analyses if a.snapshot is not None}
    start = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at)
    equity = start.equity
    unpriced = unpriced_assets(account.balances, prices)
    breaker_events: list[BreakerEvent]
    if unpriced and account.risk is not None:  # equity would be understated: no breaker may trip on it
        risk, breaker_events = account.risk, []
    else:
        risk, breaker_events = mark_equity(
            account.risk or initial_risk_state(equity, at), equity, at, settings.risk
        )
    bus = MessageBus(settings.bus, correlation_id=cycle_id)
    audit: list[Message] = []
    bus.subscribe("*", audit.append, subscriber="audit")
    by_symbol = {r.symbol: r for r in resolutions}
    run = _Run(cycle_id, at, settings, bus, account, prices, risk, {a.symbol: a for a in analyses}, by_symbol)
    outcomes = list(health)
    run.health, degradation = record(account.health, outcomes, settings.degradation, at)
    run.subscribe()
    if account.last_cycle_at is not None and at < account.last_cycle_at:
        await run.notice(
            f"as-of time {at.isoformat()} precedes the account's last cycle "
            f"({account.last_cycle_at.isoformat()}): balances and positions carry state from later cycles; "
            "use a fresh database to replay the past"
        )
    for change in state_changes:
        await run.publish(Topic.SYSTEM_EVENTS, CoordinatorStateChanged(change=change), Priority.HIGH)
    for text in notices:
        await run.notice(text)
    if unpriced and account.risk is not None:
        await run.notice(
            f"circuit breakers not checked this run: no price for {', '.join(unpriced)} "
            "(equity would be understated)"
        )
    for moved in degradation:
        await run.publish(Topic.SYSTEM_EVENTS, moved, Priority.HIGH)
    for event in breaker_events:
        await run.publish(Topic.RISK_ALERTS, event, Priority.URGENT)
    await run.close_all_while_drawdown()
    for analysis in analyses:
        await run.symbol(analysis)
    for trade in rebalance:
        await run.rebalance(trade)
    await bus.retry_dead_letters()
    final = Portfolio(balances=run.broker.balances, prices=prices, positions=run.positions, as_of=at)
    regimes = dict(account.regimes) | {a.symbol: a.regime.state for a in analyses if a.regime is not None}
    return Coordination(
        [run.outcomes[a.symbol] for a in analyses],
        final,
        equity,
        run.risk,
        regimes,
        run.closed,
        run.events,
        audit,
        bus.dead_letters(),
        list(resolutions),
        run.state,
        run.state_changes,
        run.health,
        outcomes,
        degradation,
        list(run.moved_stops.values()),
    )


class _Run:
    """One coordination pass: the coordinator's handlers and the bookkeeping they share."""

    def __init__(
        self,
        cycle_id: str,
        at: datetime,
        settings: Settings,
        bus: MessageBus,
        account: AccountState,
        prices: dict[str, Decimal],
        risk: RiskState,
        analyses: dict[str, SymbolAnalysis],
        resolutions: dict[str, Resolution],
    ) -> None:
        self.cycle_id, self.at, self.settings, self.bus, self.prices = cycle_id, at, settings, bus, prices
        self.resolutions = resolutions
        self.state, self.analyses, self.risk = account.coordinator, analyses, risk
        self.broker = PaperBroker(account.balances, settings.broker, settings.market.symbol_specs)
        self.positions = list(account.positions)
        self.closed: list[Position] = []
        self.events: list[str] = []
        self.outcomes: dict[str, SymbolOutcome] = {}
        self.health = account.health
        self.state_set_by = account.state_set_by
        self.state_changes: list[StateChange] = []
        self.moved_stops: dict[str, Position] = {}
        self.breaker_executions: dict[str, list[Execution]] = {}
        watch = settings.watch
        self.trailing = (
            Trailing(float(watch.trailing_activation_pct), float(watch.trailing_distance_pct))
            if watch.trailing_stop
            else None
        )

    def subscribe(self) -> None:
        """Risk and execution failures must fail the cycle, not vanish: those handlers propagate."""
        self.bus.subscribe(
            Topic.TRADING_SIGNALS,
            self.on_trading_signal,
            subscriber=SOURCE,
            error_policy=ErrorPolicy.PROPAGATE,
        )
        self.bus.subscribe(
            Topic.RISK_ALERTS, self.on_risk_alert, subscriber=SOURCE, error_policy=ErrorPolicy.PROPAGATE
        )
        self.bus.subscribe(Topic.EXECUTION_EVENTS, self.on_execution_event, subscriber=SOURCE)
        self.bus.subscribe(Topic.SYSTEM_EVENTS, self.on_system_event, subscriber=SOURCE)

    async def publish(self, topic: Topic, payload: BaseModel, priority: Priority = Priority.NORMAL) -> None:
        await self.bus.publish(self.bus.message(topic, SOURCE, payload, priority))

    async def notice(self, text: str) -> None:
        await self.publish(Topic.SYSTEM_EVENTS, CoordinatorNoticed(text=text))

    async def symbol(self, a: SymbolAnalysis) -> None:
        """Exits, then the agents' outputs and the signal, published in pipeline order."""
        if a.error is not None or a.snapshot is None:
            self.outcomes[a.symbol] = SymbolOutcome(
                symbol=a.symbol,
                error=a.error or "no market data",
                exits=self.breaker_executions.get(a.symbol, []),
            )
            await self.publish(
                Topic.SYSTEM_EVENTS, SymbolSkipped(symbol=a.symbol, reason=a.error or "no data")
            )
            return
        self.outcomes[a.symbol] = SymbolOutcome(
            symbol=a.symbol,
            price=a.snapshot.current_price,
            last_candle_at=a.snapshot.last_candle_at,
            missing_candles=a.snapshot.missing_candles,
            technical=a.technical,
            regime=a.regime,
            signal=a.signal,
            sentiment=a.sentiment,
            exits=[*self.breaker_executions.get(a.symbol, []), *await self._exits(a.snapshot)],
        )
        for topic, report in ((Topic.TA_SIGNALS, a.technical), (Topic.REGIME_UPDATES, a.regime)):
            if report is not None:
                await self.publish(topic, report)
        if a.signal is not None:
            await self.publish(Topic.TRADING_SIGNALS, a.signal, Priority.HIGH)

    async def on_trading_signal(self, message: Message) -> None:
        """Signal, conflict resolution, consensus, proposal, risk verdict, paper order: each published."""
        signal = message.payload
        if not isinstance(signal, TradingSignal):
            return
        a = self.analyses[signal.symbol]
        if a.snapshot is None or a.regime is None or a.technical is None:
            return
        resolution = self.resolutions.get(signal.symbol)
        if resolution is not None:
            self._update(signal.symbol, resolution=resolution)
            await self.publish(Topic.SYSTEM_EVENTS, ConflictResolved(resolution=resolution), Priority.HIGH)
            if _closes_positions(resolution):
                signal = signal.model_copy(update={"action": Action.CLOSE_LONG})
            elif not resolution.proceeds and signal.action is not Action.HOLD:
                await self.notice(
                    f"{signal.symbol}: {signal.action} not traded: conflict resolved as {resolution.action} "
                    f"by {resolution.decided_by}"
                )
                return
        if signal.action is Action.HOLD:
            return
        if self.state is not CoordinatorState.RUNNING:
            await self.notice(f"{signal.symbol}: {signal.action} not acted on, coordinator is {self.state}")
            return
        multiplier = consensus_multiplier(signal, a.technical, a.regime, a.sentiment, self.settings.consensus)
        signal = apply_consensus(signal, multiplier)
        self._update(signal.symbol, signal=signal)
        await self._decide(signal, a.snapshot, a.regime, a.technical, resolution)

    async def _decide(
        self,
        signal: TradingSignal,
        snapshot: MarketSnapshot,
        regime: RegimeAssessment,
        technical: TechnicalReport,
        resolution: Resolution | None,
    ) -> None:
        """Proposal (modified as the resolution asks), the risk verdict, then execution if approved."""
        portfolio = self._portfolio()
        try:
            proposal = propose(signal, snapshot.current_price, portfolio)
        except ValidationError as e:
            reason = RiskReason(code="INVALID_PROPOSAL", message=_first_error(e))
            await self._rejected(
                signal.symbol, RiskVerdict(status=VerdictStatus.REJECTED, proposal=None, rejections=[reason])
            )
            return
        if proposal is None:
            await self.notice(
                f"{signal.symbol}: {signal.action} has nothing to act on (no matching position)"
            )
            return
        if resolution is not None and resolution.modifications is not None:
            proposal, notes = apply_modifications(proposal, resolution.modifications, self.settings.conflicts)
            await self.notice(f"{signal.symbol}: resolution modified the trade: " + "; ".join(notes))
            if proposal is None:
                return
        if proposal.intent is Intent.OPEN and not self.health.level.opens_positions:
            reason = RiskReason(
                code="DEGRADED_EMERGENCY",
                message=f"degradation level {self.health.level}: no new position until the system recovers",
            )
            verdict = RiskVerdict(status=VerdictStatus.REJECTED, proposal=proposal, rejections=[reason])
            await self._rejected(signal.symbol, verdict)
            return
        ctx = RiskContext(portfolio, self.risk, regime.parameters, technical.indicators, self.at)
        verdict = evaluate(proposal, ctx, self.settings.risk)
        if not verdict.approved:
            await self._rejected(signal.symbol, verdict)
            return
        self._update(signal.symbol, verdict=verdict)
        await self.publish(Topic.RISK_ALERTS, TradeApproved(symbol=signal.symbol, verdict=verdict))
        self._update(signal.symbol, execution=await self._execute(verdict, snapshot))

    async def _rejected(self, symbol: str, verdict: RiskVerdict) -> None:
        self._update(symbol, verdict=verdict)
        await self.publish(Topic.RISK_ALERTS, TradeRejected(symbol=symbol, verdict=verdict), Priority.HIGH)

    def _update(self, symbol: str, **fields: object) -> None:
        self.outcomes[symbol] = self.outcomes[symbol].model_copy(update=fields)

    async def on_risk_alert(self, message: Message) -> None:
        """A breaker that trips acts through the broker and the coordinator state (spec 3.15's table)."""
        event = message.payload
        if isinstance(event, CircuitBreakerTripped):
            self.events.append(f"{event.breaker} breaker tripped: {event.reason}")
            breaker = RiskBreaker(event.breaker)
            if breaker is RiskBreaker.DAILY_LOSS:
                await self._change_state(CoordinatorState.PAUSED, f"daily loss breaker: {event.reason}")
            elif breaker is RiskBreaker.WEEKLY_LOSS:
                await self._reduce_all(self.settings.risk.weekly_loss_reduce_pct)
            elif breaker is RiskBreaker.MAX_DRAWDOWN:
                await self._change_state(CoordinatorState.HALTED, f"max drawdown breaker: {event.reason}")
                await self.close_all_while_drawdown()
        elif isinstance(event, CircuitBreakerReset):
            self.events.append(f"{event.breaker} breaker reset")
            paused_by_breaker = (
                self.state is CoordinatorState.PAUSED and self.state_set_by == CIRCUIT_BREAKER_ACTOR
            )
            if event.breaker == RiskBreaker.DAILY_LOSS.value and paused_by_breaker:
                await self._change_state(
                    CoordinatorState.RUNNING, "daily loss breaker reset at the day change"
                )

    async def _change_state(self, to: CoordinatorState, reason: str) -> None:
        """The circuit breaker changes the coordinator's state; never out of HALTED (that is a human's)."""
        if self.state is to or self.state is CoordinatorState.HALTED:
            return
        change = StateChange(
            at=self.at, from_state=self.state, to_state=to, actor=CIRCUIT_BREAKER_ACTOR, reason=reason
        )
        self.state, self.state_set_by = to, CIRCUIT_BREAKER_ACTOR
        self.state_changes.append(change)
        await self.publish(Topic.SYSTEM_EVENTS, CoordinatorStateChanged(change=change), Priority.URGENT)

    async def close_all_while_drawdown(self) -> None:
        """While the max-drawdown breaker is tripped, every open position with a price is closed."""
        if RiskBreaker.MAX_DRAWDOWN not in self.risk.tripped:
            return
        for symbol in dict.fromkeys(p.symbol for p in self.positions):
            price = self.prices.get(symbol)
            mine = [p for p in self.positions if p.symbol == symbol]
            if price is None:
                await self.notice(f"{symbol}: cannot close {len(mine)} position(s) now, no price this run")
                continue
            order_id = client_order_id(self.cycle_id, symbol, "breaker-close")
            execution = self.broker.close(mine, order_id, self.cycle_id, price, self.at, "circuit_breaker")
            await self._settle(execution)
            self._record_exit(symbol, execution)

    async def rebalance(self, trade: RebalanceTrade) -> None:
        """One spot trade of a rebalance: never selling what positions or hodl bags hold."""
        symbol = trade.symbol
        if self.state is not CoordinatorState.RUNNING:
            await self.notice(
                f"rebalance {trade.side} {trade.amount_usd} USD of {symbol} not made: "
                f"coordinator is {self.state}"
            )
            return
        price = self.prices.get(symbol)
        if price is None:
            await self.notice(f"rebalance {trade.side} of {symbol} not made: no price this run")
            return
        size_usd = trade.amount_usd
        if trade.side is Side.SELL:
            base, _ = split_symbol(symbol)
            held = self.broker.balances.get(base, Decimal(0))
            reserved = self.settings.portfolio.hodl.get(base, Decimal(0)) + sum(
                (p.size for p in self.positions if p.symbol == symbol), Decimal(0)
            )
            free_usd = max(held - reserved, Decimal(0)) * price
            if free_usd < size_usd:
                await self.notice(
                    f"rebalance sell of {symbol} cut from {size_usd} to {free_usd:.2f} USD: "
                    "the rest is held by open positions or the hodl bag"
                )
                size_usd = free_usd.quantize(Decimal("0.01"), ROUND_DOWN)
                if size_usd <= 0:
                    return
        proposal = TradeProposal(
            symbol=symbol,
            side=trade.side,
            intent=Intent.REBALANCE,
            size_usd=size_usd,
            entry_price=price,
            confidence=1.0,
            regime="rebalance",
        )
        verdict = evaluate_rebalance(proposal, self.risk)
        if not verdict.approved:
            await self._rejected(symbol, verdict)
            return
        self._update(symbol, verdict=verdict)
        await self.publish(Topic.RISK_ALERTS, TradeApproved(symbol=symbol, verdict=verdict))
        order_id = client_order_id(self.cycle_id, symbol, trade.side, Intent.REBALANCE)
        execution = self.broker.rebalance(proposal, order_id, self.cycle_id, price, self.at)
        await self._settle(execution)
        self._update(symbol, execution=execution)

    async def _reduce_all(self, pct: Decimal) -> None:
        """Sell `pct` percent of every open position (the weekly-loss breaker)."""
        for position in list(self.positions):
            price = self.prices.get(position.symbol)
            if price is None:
                await self.notice(
                    f"{position.symbol}: cannot reduce position {position.id}, no price this run"
                )
                continue
            order_id = client_order_id(self.cycle_id, position.id, "breaker-reduce")
            execution = self.broker.reduce(
                position, pct, order_id, self.cycle_id, price, self.at, "circuit_breaker"
            )
            await self._settle(execution)
            self._record_exit(position.symbol, execution)

    def _record_exit(self, symbol: str, execution: Execution) -> None:
        """Keep a breaker's order in the symbol's outcome, beside its stop-loss / take-profit exits."""
        self.breaker_executions.setdefault(symbol, []).append(execution)

    async def on_execution_event(self, message: Message) -> None:
        """A refused order is worth a line in the report."""
        event = message.payload
        if isinstance(event, OrderRejected):
            self.events.append(
                f"{event.order.symbol}: order {event.order.client_order_id} rejected: {event.order.reason}"
            )

    async def on_system_event(self, message: Message) -> None:
        """Notices and skipped symbols go into the report."""
        event = message.payload
        if isinstance(event, CoordinatorNoticed):
            self.events.append(event.text)
        elif isinstance(event, CoordinatorStateChanged):
            c = event.change
            when = f"{c.at:%Y-%m-%d %H:%M}"
            self.events.append(
                f"coordinator {c.from_state} -> {c.to_state} by {c.actor} at {when}: {c.reason}"
            )
        elif isinstance(event, SymbolSkipped):
            self.events.append(f"{event.symbol} skipped: {event.reason}")
        elif isinstance(event, DegradationChanged):
            self.events.append(f"{event.name}: {event.from_level} -> {event.to_level} ({event.reason})")

    def _portfolio(self) -> Portfolio:
        return Portfolio(
            balances=self.broker.balances, prices=self.prices, positions=self.positions, as_of=self.at
        )

    async def _exits(self, snapshot: MarketSnapshot) -> list[Execution]:
        executions = []
        for position in [p for p in self.positions if p.symbol == snapshot.symbol]:
            trigger = find_exit(position, snapshot.candles, self.trailing)
            if trigger is None:
                self._trail(position, snapshot)
                continue
            order_id = client_order_id(self.cycle_id, position.id, trigger.reason)
            price = to_decimal(trigger.price)
            execution = self.broker.close(
                [position],
                order_id,
                self.cycle_id,
                price,
                trigger.at,
                trigger.reason,
                slippage=trigger.slippage,
            )
            await self._settle(execution)
            executions.append(execution)
        return executions

    def _trail(self, position: Position, snapshot: MarketSnapshot) -> None:
        """Move a trailing stop up to where the candles since entry put it (never down)."""
        if self.trailing is None:
            return
        stop = trailed_stop(position, snapshot.candles, self.trailing)
        if stop is None:
            return
        spec = self.settings.market.symbol_specs.get(position.symbol)
        if spec is not None:
            stop = stop.quantize(Decimal(1).scaleb(-spec.price_decimals))
        if position.stop_loss is not None and stop <= position.stop_loss:
            return
        moved = position.model_copy(update={"stop_loss": stop})
        self.positions = [moved if p.id == position.id else p for p in self.positions]
        self.moved_stops[position.id] = moved
        self.events.append(
            f"{position.symbol}: trailing stop of {position.id} moved {position.stop_loss} -> {stop}"
        )

    async def _execute(self, verdict: RiskVerdict, snapshot: MarketSnapshot) -> Execution:
        proposal = verdict.final_proposal
        if proposal is None:
            raise ValueError("an approved verdict without a proposal")
        order_id = client_order_id(self.cycle_id, proposal.symbol, proposal.side, proposal.intent)
        if proposal.intent is Intent.CLOSE:
            to_close = [p for p in self.positions if p.symbol == proposal.symbol]
            execution = self.broker.close(
                to_close, order_id, self.cycle_id, snapshot.current_price, self.at, "signal"
            )
        else:
            execution = self.broker.open(proposal, order_id, self.cycle_id, snapshot.current_price, self.at)
        await self._settle(execution)
        return execution

    async def _settle(self, execution: Execution) -> None:
        """Apply an order's result to positions and risk memory, then publish it."""
        filled = execution.order.status is OrderStatus.FILLED and execution.fill is not None
        self.risk, cooling = record_execution(self.risk, filled, self.at, self.settings.risk)
        if cooling:
            await self.notice(
                f"{self.settings.risk.execution_error_limit} order errors in a row: no new entry until "
                f"{self.risk.execution_cooldown_until:%Y-%m-%d %H:%M} UTC"
            )
        if not filled or execution.fill is None:
            await self.publish(Topic.EXECUTION_EVENTS, OrderRejected(order=execution.order), Priority.HIGH)
            return
        await self.publish(Topic.EXECUTION_EVENTS, OrderFilled(order=execution.order, fill=execution.fill))
        if execution.opened_position is not None:
            self.positions.append(execution.opened_position)
            await self.publish(Topic.PORTFOLIO_UPDATES, PositionOpened(position=execution.opened_position))
        reduced = {p.id: p for p in execution.reduced_positions}
        closed_ids = {p.id for p in execution.closed_positions}
        self.positions = [reduced.get(p.id, p) for p in self.positions if p.id not in closed_ids]
        for position in execution.closed_positions:
            self.closed.append(position)
            pnl = position.realized_pnl or Decimal(0)
            self.risk = record_trade_result(self.risk, position.symbol, pnl, self.at, self.settings.risk)
            await self.publish(Topic.PORTFOLIO_UPDATES, PositionClosed(position=position), Priority.HIGH)


def propose(signal: TradingSignal, price: Decimal, portfolio: Portfolio) -> TradeProposal | None:
    """The trade a signal asks for, at the market price; None when there is nothing to act on.

    BUY opens a long sized as a percent of equity. SELL and CLOSE_LONG close the symbol's longs; a SELL
    without one becomes a short entry, which the risk engine refuses on a spot account.
    """
    longs = portfolio.open_positions(signal.symbol)
    if signal.action in (Action.SELL, Action.CLOSE_LONG) and longs:
        size_usd = sum((p.size * price for p in longs), Decimal(0))
        return TradeProposal(
            symbol=signal.symbol,
            side=Side.SELL,
            intent=Intent.CLOSE,
            size_usd=size_usd,
            entry_price=price,
            confidence=signal.confidence,
            regime=signal.regime,
            position_id=longs[0].id,
        )
    if signal.action not in (Action.BUY, Action.SELL):
        return None
    return TradeProposal(
        symbol=signal.symbol,
        side=Side.BUY if signal.action is Action.BUY else Side.SELL,
        size_usd=portfolio.equity * signal.position_size_pct / HUNDRED,
        entry_price=price,
        stop_loss=signal.stop_loss,
        take_profit=signal.take_profit,
        leverage=signal.leverage,
        confidence=signal.confidence,
        regime=signal.regime,
    )


def _closes_positions(resolution: Resolution) -> bool:
    """An abort on a regime turning against open longs means: close them now."""
    return resolution.action is ResolutionAction.ABORT and any(
        c.type is ConflictType.REGIME_CHANGE for c in resolution.conflicts
    )


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"signal cannot form a proposal: {where + ': ' if where else ''}{err['msg']}"
