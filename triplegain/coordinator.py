"""The coordinator: from each symbol's signal to a proposal, the risk engine's verdict and the broker.

Symbols are coordinated one after another in configured order, so each risk check sees the exposure
the previous trades created. Exits (stop-loss / take-profit) found since the last cycle run first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pydantic import ValidationError

from triplegain.broker.paper import PaperBroker, client_order_id
from triplegain.exits import find_exit
from triplegain.models.analysis import RegimeAssessment, RegimeState, TechnicalReport
from triplegain.models.cycle import Execution, SymbolOutcome
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, Intent, OrderStatus, Side, VerdictStatus
from triplegain.models.market import MarketSnapshot, to_decimal
from triplegain.models.trading import Portfolio, Position, RiskReason, RiskVerdict, TradeProposal
from triplegain.risk.engine import RiskContext, evaluate
from triplegain.risk.state import RiskState, initial_risk_state, mark_equity, record_trade_result
from triplegain.settings import Settings

HUNDRED = Decimal(100)


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


@dataclass(frozen=True)
class SymbolAnalysis:
    """The analysis half of a cycle for one symbol, or why it could not be done."""

    symbol: str
    snapshot: MarketSnapshot | None = None
    technical: TechnicalReport | None = None
    regime: RegimeAssessment | None = None
    signal: TradingSignal | None = None
    error: str | None = None


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


def coordinate(
    cycle_id: str, at: datetime, account: AccountState, analyses: list[SymbolAnalysis], settings: Settings
) -> Coordination:
    """Run exits, risk checks and execution for every analysed symbol, in order."""
    prices = {a.symbol: a.snapshot.current_price for a in analyses if a.snapshot is not None}
    portfolio = Portfolio(balances=account.balances, prices=prices, positions=account.positions, as_of=at)
    equity = portfolio.equity
    risk, events = mark_equity(account.risk or initial_risk_state(equity, at), equity, at, settings.risk)
    if account.last_cycle_at is not None and at < account.last_cycle_at:
        events.insert(
            0,
            f"as-of time {at.isoformat()} precedes the account's last cycle "
            f"({account.last_cycle_at.isoformat()}): balances and positions carry state from later cycles; "
            "use a fresh database to replay the past",
        )
    broker = PaperBroker(account.balances, settings.broker, settings.market.symbol_specs)
    run = _Run(cycle_id, at, settings, broker, prices, list(account.positions), risk, events)
    regimes = dict(account.regimes)
    outcomes = []
    for analysis in analyses:
        if analysis.regime is not None:
            regimes[analysis.symbol] = analysis.regime.state
        outcomes.append(run.symbol(analysis, account.coordinator))
    final = Portfolio(balances=run.broker.balances, prices=prices, positions=run.positions, as_of=at)
    return Coordination(outcomes, final, equity, run.risk, regimes, run.closed, run.events)


class _Run:
    """Mutable bookkeeping of one coordination pass (positions, risk state, closed positions)."""

    def __init__(
        self,
        cycle_id: str,
        at: datetime,
        settings: Settings,
        broker: PaperBroker,
        prices: dict[str, Decimal],
        positions: list[Position],
        risk: RiskState,
        events: list[str],
    ) -> None:
        self.cycle_id, self.at, self.settings, self.broker, self.prices = (
            cycle_id,
            at,
            settings,
            broker,
            prices,
        )
        self.positions, self.risk, self.events = positions, risk, events
        self.closed: list[Position] = []

    def symbol(self, a: SymbolAnalysis, state: CoordinatorState) -> SymbolOutcome:
        if a.error is not None or a.snapshot is None:
            return SymbolOutcome(symbol=a.symbol, error=a.error or "no market data")
        exits = self._exits(a.snapshot)
        outcome = SymbolOutcome(
            symbol=a.symbol,
            price=a.snapshot.current_price,
            last_candle_at=a.snapshot.last_candle_at,
            missing_candles=a.snapshot.missing_candles,
            technical=a.technical,
            regime=a.regime,
            signal=a.signal,
            exits=exits,
        )
        if a.signal is None or a.regime is None or a.technical is None or a.signal.action is Action.HOLD:
            return outcome
        if state is not CoordinatorState.RUNNING:
            self.events.append(f"{a.symbol}: {a.signal.action} not acted on, coordinator is {state}")
            return outcome
        verdict = self._verdict(a.signal, a.snapshot, a.regime, a.technical)
        if verdict is None:
            return outcome
        execution = self._execute(verdict, a.snapshot) if verdict.approved else None
        return outcome.model_copy(update={"verdict": verdict, "execution": execution})

    def _portfolio(self) -> Portfolio:
        return Portfolio(
            balances=self.broker.balances, prices=self.prices, positions=self.positions, as_of=self.at
        )

    def _exits(self, snapshot: MarketSnapshot) -> list[Execution]:
        executions = []
        for position in [p for p in self.positions if p.symbol == snapshot.symbol]:
            trigger = find_exit(position, snapshot.candles)
            if trigger is None:
                continue
            order_id = client_order_id(self.cycle_id, position.id, trigger.reason)
            execution = self.broker.close(
                [position],
                order_id,
                self.cycle_id,
                to_decimal(trigger.price),
                trigger.at,
                trigger.reason,
                slippage=trigger.slippage,
            )
            self._settle(execution)
            executions.append(execution)
        return executions

    def _verdict(
        self,
        signal: TradingSignal,
        snapshot: MarketSnapshot,
        regime: RegimeAssessment,
        technical: TechnicalReport,
    ) -> RiskVerdict | None:
        portfolio = self._portfolio()
        try:
            proposal = propose(signal, snapshot.current_price, portfolio)
        except ValidationError as e:
            reason = RiskReason(code="INVALID_PROPOSAL", message=_first_error(e))
            return RiskVerdict(status=VerdictStatus.REJECTED, proposal=None, rejections=[reason])
        if proposal is None:
            self.events.append(
                f"{signal.symbol}: {signal.action} has nothing to act on (no matching position)"
            )
            return None
        ctx = RiskContext(portfolio, self.risk, regime.parameters, technical.indicators, self.at)
        return evaluate(proposal, ctx, self.settings.risk)

    def _execute(self, verdict: RiskVerdict, snapshot: MarketSnapshot) -> Execution:
        proposal = verdict.final_proposal
        assert proposal is not None  # an approved verdict always carries its proposal
        order_id = client_order_id(self.cycle_id, proposal.symbol, proposal.side, proposal.intent)
        if proposal.intent is Intent.CLOSE:
            to_close = [p for p in self.positions if p.symbol == proposal.symbol]
            execution = self.broker.close(
                to_close, order_id, self.cycle_id, snapshot.current_price, self.at, "signal"
            )
        else:
            execution = self.broker.open(proposal, order_id, self.cycle_id, snapshot.current_price, self.at)
        self._settle(execution)
        return execution

    def _settle(self, execution: Execution) -> None:
        """Apply a filled order to the positions and the risk memory."""
        if execution.order.status is not OrderStatus.FILLED:
            return
        if execution.opened_position is not None:
            self.positions.append(execution.opened_position)
        closed_ids = {p.id for p in execution.closed_positions}
        self.positions = [p for p in self.positions if p.id not in closed_ids]
        for position in execution.closed_positions:
            self.closed.append(position)
            pnl = position.realized_pnl or Decimal(0)
            self.risk = record_trade_result(self.risk, position.symbol, pnl, self.at, self.settings.risk)


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


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"signal cannot form a proposal: {where + ': ' if where else ''}{err['msg']}"
