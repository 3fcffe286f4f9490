"""Rebalance trades through the coordinator: the risk engine's rebalance path and the broker's spot trades."""

from decimal import Decimal

import pytest

from tests.triplegain.factories import AT
from tests.triplegain.test_breaker_actions import holding, marks
from tests.triplegain.test_coordinator import analysis, signal
from triplegain.coordinator import coordinate
from triplegain.cycle_types import CoordinationInput
from triplegain.models.enums import Action, CoordinatorState, Intent, OrderStatus, Side, VerdictStatus
from triplegain.models.trading import TradeProposal
from triplegain.rebalance import RebalanceTrade
from triplegain.risk.engine import evaluate_rebalance
from triplegain.risk.state import CircuitBreaker
from triplegain.settings import Settings, load_settings


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def sell(amount: str) -> RebalanceTrade:
    return RebalanceTrade(symbol="BTC/USDT", side=Side.SELL, amount_usd=Decimal(amount))


def buy(amount: str) -> RebalanceTrade:
    return RebalanceTrade(symbol="BTC/USDT", side=Side.BUY, amount_usd=Decimal(amount))


def test_a_rebalance_sell_moves_balances_and_leaves_positions_alone(settings: Settings) -> None:
    acct = holding(balances={"USDT": Decimal(9_500), "BTC": Decimal(10)})  # 5 BTC free, 5 held by a position

    result = coordinate(
        CoordinationInput("dca-1", AT, acct, [analysis(signal(Action.HOLD))], rebalance=[sell("300")]),
        settings,
    )

    (execution,) = result.outcomes[0].allocation_trades
    assert result.outcomes[0].execution is None and execution.order.status is OrderStatus.FILLED
    assert execution.order.intent is Intent.REBALANCE and execution.opened_position is None
    assert result.portfolio.balances["BTC"] == Decimal(7) and [p.id for p in result.portfolio.positions] == [
        "p1"
    ]
    assert result.portfolio.balances["USDT"] > Decimal(9_790)


def test_a_rebalance_never_sells_what_a_position_holds(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput("dca-1", AT, holding(), [analysis(signal(Action.HOLD))], rebalance=[sell("300")]),
        settings,
    )

    assert result.outcomes[0].allocation_trades == [] and result.portfolio.balances["BTC"] == Decimal(5)
    assert any("the rest is held by open positions" in e for e in result.notes)


def test_rebalance_trades_wait_while_paused_and_buys_stop_on_a_tripped_breaker(settings: Settings) -> None:
    paused = coordinate(
        CoordinationInput(
            "dca-1",
            AT,
            holding(coordinator=CoordinatorState.PAUSED),
            [analysis(signal(Action.HOLD))],
            rebalance=[buy("300")],
        ),
        settings,
    )
    assert paused.outcomes[0].allocation_trades == [] and any(
        "coordinator is paused" in e for e in paused.notes
    )

    tripped = marks("10000", "10000", "10000", tripped={CircuitBreaker.WEEKLY_LOSS: "x"})
    halted = coordinate(
        CoordinationInput(
            "dca-2", AT, holding(risk=tripped), [analysis(signal(Action.HOLD))], rebalance=[buy("300")]
        ),
        settings,
    )
    verdict = halted.outcomes[0].verdict
    assert verdict is not None and verdict.status is VerdictStatus.HALTED


def test_the_rebalance_path_needs_no_stop_but_leverage_one() -> None:
    state = marks("1", "1", "1")
    ok = TradeProposal(
        symbol="BTC/USDT",
        side=Side.BUY,
        intent=Intent.REBALANCE,
        size_usd=Decimal(100),
        entry_price=Decimal(100),
        confidence=1.0,
    )
    assert evaluate_rebalance(ok, state).approved
    levered = ok.model_copy(update={"leverage": 2})
    assert evaluate_rebalance(levered, state).rejections[0].code == "REBALANCE_LEVERAGE"


def test_a_dca_trade_beside_the_symbols_own_order_keeps_both(settings: Settings) -> None:
    levels = {"entry_price": Decimal(100), "stop_loss": Decimal(98), "take_profit": Decimal(104)}
    acct = holding(balances={"USDT": Decimal(9_500), "BTC": Decimal(10)}, positions=[])

    result = coordinate(
        CoordinationInput(
            "dca-1", AT, acct, [analysis(signal(Action.BUY, **levels))], rebalance=[sell("300")]
        ),
        settings,
    )

    outcome = result.outcomes[0]
    assert outcome.execution is not None and outcome.execution.opened_position is not None
    assert [e.order.intent for e in outcome.allocation_trades] == [Intent.REBALANCE]
    assert len(outcome.executions()) == 2  # both reported, so both are stored and counted
