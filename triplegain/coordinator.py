"""The coordinator: the run's events travel on the in-flow bus, and its handlers act on them.

Per symbol, in configured order: stop-loss / take-profit exits found since the last run, then the agents'
reports and the trading signal are published; `on_trading_signal` turns the signal into a proposal, asks
the risk engine, sends approved trades to the paper broker (`triplegain.desk`) and publishes what happened.
Symbols go one after another so each risk check sees the exposure the previous trades created. An audit
subscriber records every message; the run persists them (and any dead letters) with everything else.

Circuit breakers act through the broker (`triplegain.breaker_actions`); the degradation level
(`triplegain.degradation`) moves with the run's LLM and market-data outcomes, and in EMERGENCY no new
position is opened. A DCA batch's trades follow the symbols (`triplegain.rebalance_execution`).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationError

from triplegain.aio import run_sync
from triplegain.breaker_actions import close_all_while_drawdown, on_risk_alert
from triplegain.broker import Broker
from triplegain.broker.paper import client_order_id
from triplegain.bus import ErrorPolicy, Message, MessageBus, Priority, Topic
from triplegain.consensus import apply_consensus, consensus_multiplier
from triplegain.cycle_types import Coordination, CoordinationInput, SymbolAnalysis
from triplegain.degradation import DegradationChanged, HealthUpdate, record
from triplegain.desk import SOURCE, Desk
from triplegain.events import (
    ConflictResolved,
    CoordinatorNoticed,
    CoordinatorStateChanged,
    OrderRejected,
    SymbolSkipped,
    TradeApproved,
)
from triplegain.exposure import Ceilings, ceilings, closes_by_asset
from triplegain.models.analysis import RegimeAssessment, TechnicalReport
from triplegain.models.conflicts import ConflictType, Resolution, ResolutionAction
from triplegain.models.cycle import Execution, SymbolOutcome
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, Intent, Side, VerdictStatus
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import QUOTE, Portfolio, RiskReason, RiskVerdict, TradeProposal
from triplegain.rebalance_execution import buy_hodl_bags, hold_to_ceilings, make_rebalance_trade
from triplegain.resolution import apply_modifications
from triplegain.risk.engine import RiskContext, evaluate
from triplegain.risk.state import BreakerEvent, RiskState, initial_risk_state, mark_equity
from triplegain.settings import Settings

HUNDRED = Decimal(100)


def coordinate(request: CoordinationInput, settings: Settings, broker: Broker | None = None) -> Coordination:
    """Exits, risk checks and execution for every analysed symbol, in order (synchronous entry). Orders go
    to `broker`; the paper broker on the account's balances when none is given."""
    return run_sync(coordinate_async(request, settings, broker))


async def coordinate_async(
    request: CoordinationInput, settings: Settings, broker: Broker | None = None
) -> Coordination:
    """The run's coordination on a fresh in-flow bus, its handlers subscribed."""
    account, at = request.account, request.at
    prices = {a.symbol: a.snapshot.current_price for a in request.analyses if a.snapshot is not None}
    whole = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at).equity
    equity = whole - account.hodl.value_usd(prices)  # the drawdown limit leaves the hodl bags aside
    unpriced = unpriced_assets(account.balances, prices)
    risk, breaker_events = _marked_risk(account.risk, equity, unpriced, request, settings)
    bus = MessageBus(settings.bus, correlation_id=request.run_id)
    audit: list[Message] = []
    bus.subscribe("*", audit.append, subscriber="audit")
    health, degradation = record(account.health, request.outcomes, settings.degradation, at)
    coordinator = _Coordinator(Desk(request, settings, bus, prices, risk, health, broker), request)
    await coordinator.announce(unpriced, degradation, breaker_events)
    await close_all_while_drawdown(coordinator.desk)
    for analysis in request.analyses:
        await coordinator.symbol(analysis)
    limits = exposure_ceilings(request, coordinator.desk.risk, equity, settings)
    for trade in request.rebalance:
        await make_rebalance_trade(coordinator.desk, trade, limits)
    await buy_hodl_bags(coordinator.desk)
    await hold_to_ceilings(coordinator.desk, limits)
    await bus.retry_dead_letters()
    return _coordination(coordinator.desk, request, whole, audit, degradation, settings, limits)


def exposure_ceilings(
    request: CoordinationInput, risk: RiskState, equity: Decimal, settings: Settings
) -> Ceilings:
    """The allocation's ceilings this run, from the symbols' recent closes and the account's drawdown."""
    closes = closes_by_asset(a.snapshot for a in request.analyses if a.snapshot is not None)
    return ceilings(closes, risk, equity, settings.portfolio, settings.risk)


def unpriced_assets(balances: dict[str, Decimal], prices: dict[str, Decimal]) -> list[str]:
    """Assets held without a price this run (their value would count as zero in the equity)."""
    return [a for a, amount in balances.items() if a != QUOTE and amount > 0 and f"{a}/{QUOTE}" not in prices]


def _marked_risk(
    stored: RiskState | None,
    equity: Decimal,
    unpriced: list[str],
    request: CoordinationInput,
    settings: Settings,
) -> tuple[RiskState, list[BreakerEvent]]:
    """The risk state marked at this run's equity; unmarked when a held asset has no price (the equity
    would be understated, and no breaker may trip on it)."""
    if unpriced and stored is not None:
        return stored, []
    return mark_equity(stored or initial_risk_state(equity, request.at), equity, request.at, settings.risk)


def _coordination(
    desk: Desk,
    request: CoordinationInput,
    equity: Decimal,
    audit: list[Message],
    degradation: list[DegradationChanged],
    settings: Settings,
    limits: Ceilings,
) -> Coordination:
    analyses = request.analyses
    regimes = dict(request.account.regimes) | {a.symbol: a.regime.state for a in analyses if a.regime}
    return Coordination(
        outcomes=[desk.outcomes[a.symbol] for a in analyses],
        portfolio=desk.portfolio(),
        starting_equity=equity,
        risk=desk.risk,
        regimes=regimes,
        health_update=HealthUpdate(tuple(request.outcomes), settings.degradation, request.at),
        closed_positions=desk.closed,
        notes=desk.notes,
        messages=audit,
        dead_letters=desk.bus.dead_letters(),
        resolutions=list(request.resolutions),
        coordinator=desk.state,
        state_changes=desk.state_changes,
        health=desk.health,
        degradation_changes=degradation,
        moved_stops=list(desk.moved_stops.values()),
        ceilings=limits,
        hodl=desk.hodl,
        hodl_entries=desk.hodl_entries,
    )


class _Coordinator:
    """The coordinator's handlers for one pass, acting on its desk."""

    def __init__(self, desk: Desk, request: CoordinationInput) -> None:
        self.desk, self.request = desk, request
        self.analyses = {a.symbol: a for a in request.analyses}
        self.resolutions = {r.symbol: r for r in request.resolutions}
        bus = desk.bus
        # Risk and execution failures must fail the run, not vanish: those handlers propagate.
        propagate = ErrorPolicy.PROPAGATE
        bus.subscribe(
            Topic.TRADING_SIGNALS, self.on_trading_signal, subscriber=SOURCE, error_policy=propagate
        )
        bus.subscribe(Topic.RISK_ALERTS, self.on_risk_alert, subscriber=SOURCE, error_policy=propagate)
        bus.subscribe(Topic.EXECUTION_EVENTS, self.on_execution_event, subscriber=SOURCE)
        bus.subscribe(Topic.SYSTEM_EVENTS, self.on_system_event, subscriber=SOURCE)

    async def announce(
        self, unpriced: list[str], degradation: list[DegradationChanged], breaker_events: list[BreakerEvent]
    ) -> None:
        """What the run says before any symbol: a replay of the past, state changes since the last run,
        earlier steps' notices, unchecked breakers, degradation changes, breakers tripped or reset."""
        desk, request = self.desk, self.request
        last = request.account.last_cycle_at
        if last is not None and request.at < last:
            await desk.notice(
                f"as-of time {request.at.isoformat()} precedes the account's last cycle "
                f"({last.isoformat()}): balances and positions carry state from later cycles; "
                "use a fresh database to replay the past"
            )
        for change in request.state_changes:
            await desk.publish(Topic.SYSTEM_EVENTS, CoordinatorStateChanged(change=change), Priority.HIGH)
        for text in request.notices:
            await desk.notice(text)
        if unpriced and request.account.risk is not None:
            await desk.notice(
                f"circuit breakers not checked this run: no price for {', '.join(unpriced)} "
                "(equity would be understated)"
            )
        for moved in degradation:
            await desk.publish(Topic.SYSTEM_EVENTS, moved, Priority.HIGH)
        for event in breaker_events:
            await desk.publish(Topic.RISK_ALERTS, event, Priority.URGENT)

    async def symbol(self, a: SymbolAnalysis) -> None:
        """Exits, then the agents' outputs and the signal, published in pipeline order."""
        desk = self.desk
        earlier = desk.breaker_executions.get(a.symbol, [])
        if a.error is not None or a.snapshot is None:
            desk.outcomes[a.symbol] = SymbolOutcome(
                symbol=a.symbol, error=a.error or "no market data", exits=earlier
            )
            await desk.publish(
                Topic.SYSTEM_EVENTS, SymbolSkipped(symbol=a.symbol, reason=a.error or "no data")
            )
            return
        desk.outcomes[a.symbol] = SymbolOutcome(
            symbol=a.symbol,
            price=a.snapshot.current_price,
            last_candle_at=a.snapshot.last_candle_at,
            missing_candles=a.snapshot.missing_candles,
            technical=a.technical,
            regime=a.regime,
            signal=a.signal,
            sentiment=a.sentiment,
            exits=[*earlier, *await desk.exits(a.snapshot)],
        )
        for topic, report in ((Topic.TA_SIGNALS, a.technical), (Topic.REGIME_UPDATES, a.regime)):
            if report is not None:
                await desk.publish(topic, report)
        if a.signal is not None:
            await desk.publish(Topic.TRADING_SIGNALS, a.signal, Priority.HIGH)

    async def on_trading_signal(self, message: Message) -> None:
        """Signal, conflict resolution, consensus, proposal, risk verdict, paper order: each published."""
        signal, desk = message.payload, self.desk
        if not isinstance(signal, TradingSignal):
            return
        a = self.analyses[signal.symbol]
        if a.snapshot is None or a.regime is None or a.technical is None:
            return
        resolution = self.resolutions.get(signal.symbol)
        if resolution is not None:
            resolved = await self._resolved(signal, resolution)
            if resolved is None:
                return
            signal = resolved
        if signal.action is Action.HOLD:
            return
        if desk.state is not CoordinatorState.RUNNING:
            await desk.notice(f"{signal.symbol}: {signal.action} not acted on, coordinator is {desk.state}")
            return
        settings = desk.settings.consensus
        signal = apply_consensus(
            signal, consensus_multiplier(signal, a.technical, a.regime, a.sentiment, settings)
        )
        desk.update(signal.symbol, signal=signal)
        await self._decide(signal, a.snapshot, a.regime, a.technical, resolution)

    async def _resolved(self, signal: TradingSignal, resolution: Resolution) -> TradingSignal | None:
        """The signal as its conflict resolution leaves it; None when the resolution stops the trade."""
        self.desk.update(signal.symbol, resolution=resolution)
        await self.desk.publish(Topic.SYSTEM_EVENTS, ConflictResolved(resolution=resolution), Priority.HIGH)
        if _closes_positions(resolution):
            return signal.model_copy(update={"action": Action.CLOSE_LONG})
        if not resolution.proceeds and signal.action is not Action.HOLD:
            await self.desk.notice(
                f"{signal.symbol}: {signal.action} not traded: conflict resolved as {resolution.action} "
                f"by {resolution.decided_by}"
            )
            return None
        return signal

    async def _decide(
        self,
        signal: TradingSignal,
        snapshot: MarketSnapshot,
        regime: RegimeAssessment,
        technical: TechnicalReport,
        resolution: Resolution | None,
    ) -> None:
        """Proposal (modified as the resolution asks), the risk verdict, then execution if approved."""
        desk = self.desk
        proposal = await self._proposal(signal, snapshot, resolution)
        if proposal is None:
            return
        if proposal.intent is Intent.OPEN and not desk.health.level.opens_positions:
            reason = RiskReason(
                code="DEGRADED_EMERGENCY",
                message=f"degradation level {desk.health.level}: no new position until the system recovers",
            )
            await desk.rejected(
                signal.symbol,
                RiskVerdict(status=VerdictStatus.REJECTED, proposal=proposal, rejections=[reason]),
            )
            return
        broker = desk.settings.broker
        ctx = RiskContext(
            desk.portfolio(),
            desk.risk,
            regime.parameters,
            technical.indicators,
            desk.at,
            fee_pct=broker.fee_pct,
            max_slippage_pct=broker.max_slippage_pct,
            hodl_usd=desk.hodl.value_usd(desk.prices),
        )
        verdict = evaluate(proposal, ctx, desk.settings.risk)
        if not verdict.approved:
            await desk.rejected(signal.symbol, verdict)
            return
        desk.update(signal.symbol, verdict=verdict)
        await desk.publish(Topic.RISK_ALERTS, TradeApproved(symbol=signal.symbol, verdict=verdict))
        desk.update(signal.symbol, execution=await self._execute(verdict, snapshot))

    async def _proposal(
        self, signal: TradingSignal, snapshot: MarketSnapshot, resolution: Resolution | None
    ) -> TradeProposal | None:
        """The trade the signal asks for, as the resolution modifies it; None (said why) when none."""
        desk = self.desk
        try:
            proposal = propose(signal, snapshot.current_price, desk.portfolio())
        except ValidationError as e:
            reason = RiskReason(code="INVALID_PROPOSAL", message=_first_error(e))
            verdict = RiskVerdict(status=VerdictStatus.REJECTED, proposal=None, rejections=[reason])
            await desk.rejected(signal.symbol, verdict)
            return None
        if proposal is None:
            await desk.notice(
                f"{signal.symbol}: {signal.action} has nothing to act on (no matching position)"
            )
            return None
        if resolution is not None and resolution.modifications is not None:
            proposal, notes = apply_modifications(proposal, resolution.modifications, desk.settings.conflicts)
            await desk.notice(f"{signal.symbol}: resolution modified the trade: " + "; ".join(notes))
        return proposal

    async def _execute(self, verdict: RiskVerdict, snapshot: MarketSnapshot) -> Execution:
        desk, proposal = self.desk, verdict.final_proposal
        if proposal is None:
            raise ValueError("an approved verdict without a proposal")
        order_id = client_order_id(desk.run_id, proposal.symbol, proposal.side, proposal.intent)
        price = snapshot.current_price
        if proposal.intent is Intent.CLOSE:
            to_close = [p for p in desk.positions if p.symbol == proposal.symbol]
            execution = desk.broker.close(to_close, order_id, desk.run_id, price, desk.at, "signal")
        else:
            execution = desk.broker.open(proposal, order_id, desk.run_id, price, desk.at)
        await desk.settle(execution)
        return execution

    async def on_risk_alert(self, message: Message) -> None:
        """A breaker that trips or resets acts through the broker and the coordinator state."""
        await on_risk_alert(self.desk, message)

    async def on_execution_event(self, message: Message) -> None:
        """A refused order is worth a line in the report."""
        event = message.payload
        if isinstance(event, OrderRejected):
            order = event.order
            self.desk.notes.append(f"{order.symbol}: order {order.client_order_id} rejected: {order.reason}")

    async def on_system_event(self, message: Message) -> None:
        """Notices, state changes, skipped symbols and degradation changes go into the report."""
        event, notes = message.payload, self.desk.notes
        if isinstance(event, CoordinatorNoticed):
            notes.append(event.text)
        elif isinstance(event, CoordinatorStateChanged):
            c = event.change
            when = f"{c.at:%Y-%m-%d %H:%M}"
            notes.append(f"coordinator {c.from_state} -> {c.to_state} by {c.actor} at {when}: {c.reason}")
        elif isinstance(event, SymbolSkipped):
            notes.append(f"{event.symbol} skipped: {event.reason}")
        elif isinstance(event, DegradationChanged):
            notes.append(f"{event.name}: {event.from_level} -> {event.to_level} ({event.reason})")


def propose(signal: TradingSignal, price: Decimal, portfolio: Portfolio) -> TradeProposal | None:
    """The trade a signal asks for, at the market price; None when there is nothing to act on.

    BUY opens a long sized as a percent of equity. SELL and CLOSE_LONG close the symbol's longs; a SELL
    without one becomes a short entry, which the risk engine refuses on a spot account.
    """
    longs = portfolio.open_positions(signal.symbol)
    if signal.action in (Action.SELL, Action.CLOSE_LONG) and longs:
        return TradeProposal(
            symbol=signal.symbol,
            side=Side.SELL,
            intent=Intent.CLOSE,
            size_usd=sum((p.size * price for p in longs), Decimal(0)),
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
