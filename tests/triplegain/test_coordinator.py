from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.triplegain.factories import AT, regime, snapshot, technical, vote
from triplegain.agents.decision import aggregate_votes
from triplegain.coordinator import coordinate, propose
from triplegain.cycle_types import AccountState, CoordinationInput, SymbolAnalysis
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, Intent, OrderStatus, Regime, Side, VerdictStatus
from triplegain.models.trading import Portfolio, Position
from triplegain.settings import Settings, load_settings


def signal(
    action: Action, symbol: str = "BTC/USDT", confidence: float = 0.8, **prices: Decimal
) -> TradingSignal:
    v = vote(action, confidence=confidence, **prices).model_copy(update={"position_size_pct": Decimal(10)})
    return aggregate_votes(
        symbol, AT, [v], 1, technical(symbol=symbol), regime(symbol=symbol), load_settings().decision
    )


def analysis(sig: TradingSignal, price: str = "100") -> SymbolAnalysis:
    return SymbolAnalysis(
        sig.symbol,
        snapshot(sig.symbol, price),
        technical(symbol=sig.symbol),
        regime(Regime.TRENDING_BULL, sig.symbol),
        sig,
    )


def account(**overrides: object) -> AccountState:
    base = AccountState(CoordinatorState.RUNNING, {"USDT": Decimal(10_000)}, [], None, {})
    return replace(base, **overrides)  # type: ignore[arg-type]


def held(size: str = "5", stop: str = "90") -> Position:
    return Position(
        id="p1",
        symbol="BTC/USDT",
        size=Decimal(size),
        entry_price=Decimal(100),
        stop_loss=Decimal(stop),
        take_profit=Decimal(150),
        opened_at=AT + timedelta(hours=1),
        cycle_id="c0",
    )


@pytest.fixture
def settings() -> Settings:
    return load_settings()


BUY_LEVELS = {"entry_price": Decimal(100), "stop_loss": Decimal(98), "take_profit": Decimal(104)}


def test_buy_signal_is_approved_executed_and_opens_a_position(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput("c1", AT, account(), [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
    )

    outcome = result.outcomes[0]
    assert outcome.verdict is not None and outcome.verdict.status is VerdictStatus.APPROVED
    assert outcome.execution is not None and outcome.execution.order.status is OrderStatus.FILLED
    assert outcome.execution.order.size == Decimal("10")  # 10% of 10000 equity at 100
    assert [p.id for p in result.portfolio.positions] == [outcome.execution.order.client_order_id]
    assert result.portfolio.balances["BTC"] == Decimal(10)


def test_sell_signal_closes_the_open_long_and_feeds_the_risk_state(settings: Settings) -> None:
    acct = account(balances={"USDT": Decimal(9_500), "BTC": Decimal(5)}, positions=[held()])

    result = coordinate(
        CoordinationInput(
            "c1",
            AT,
            acct,
            [analysis(signal(Action.SELL, stop_loss=Decimal(102), entry_price=Decimal(100)), "97")],
        ),
        settings,
    )

    execution = result.outcomes[0].execution
    assert (
        execution is not None and execution.order.intent is Intent.CLOSE and execution.order.side is Side.SELL
    )
    assert result.portfolio.positions == [] and result.closed_positions[0].realized_pnl < 0  # type: ignore[operator]
    assert result.risk.consecutive_losses == 1 and result.risk.in_cooldown("BTC/USDT", AT)


def test_sell_without_a_long_is_refused_as_a_short(settings: Settings) -> None:
    sell = signal(Action.SELL, entry_price=Decimal(100), stop_loss=Decimal(102), take_profit=Decimal(96))

    result = coordinate(CoordinationInput("c1", AT, account(), [analysis(sell)]), settings)

    verdict = result.outcomes[0].verdict
    assert verdict is not None and verdict.rejections[0].code == "SHORT_NOT_ALLOWED"
    assert result.outcomes[0].execution is None


def test_signal_with_inverted_levels_is_recorded_as_an_invalid_proposal(settings: Settings) -> None:
    bad = signal(Action.BUY, entry_price=Decimal(100), stop_loss=Decimal(103), take_profit=Decimal(110))

    verdict = (
        coordinate(CoordinationInput("c1", AT, account(), [analysis(bad)]), settings).outcomes[0].verdict
    )

    assert verdict is not None and verdict.status is VerdictStatus.REJECTED and verdict.proposal is None
    assert (
        verdict.rejections[0].code == "INVALID_PROPOSAL"
        and "levels inverted" in verdict.rejections[0].message
    )


def test_stop_loss_hit_since_the_last_cycle_closes_before_new_signals(settings: Settings) -> None:
    acct = account(balances={"USDT": Decimal(9_500), "BTC": Decimal(5)}, positions=[held(stop="99.5")])
    later = AT + timedelta(hours=5)
    hold = aggregate_votes(
        "BTC/USDT", later, [vote(Action.HOLD)], 1, technical(), regime(), settings.decision
    )
    a = SymbolAnalysis("BTC/USDT", snapshot(at=later), technical(), regime(), hold)

    result = coordinate(CoordinationInput("c5", later, acct, [a]), settings)

    exit_ = result.outcomes[0].exits[0]
    assert exit_.closed_positions[0].close_reason == "stop_loss"
    assert result.portfolio.positions == [] and result.portfolio.balances["BTC"] == 0


def test_paused_coordinator_analyses_but_does_not_trade(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput(
            "c1",
            AT,
            account(coordinator=CoordinatorState.PAUSED),
            [analysis(signal(Action.BUY, **BUY_LEVELS))],
        ),
        settings,
    )

    assert result.outcomes[0].signal is not None and result.outcomes[0].execution is None
    assert "coordinator is paused" in result.notes[0]


def test_symbol_with_an_error_is_reported_and_others_proceed(settings: Settings) -> None:
    analyses = [SymbolAnalysis("XRP/USDT", error="no data"), analysis(signal(Action.BUY, **BUY_LEVELS))]

    result = coordinate(CoordinationInput("c1", AT, account(), analyses), settings)

    assert result.outcomes[0].error == "no data"
    assert result.outcomes[1].execution is not None


def test_second_symbol_sees_the_exposure_of_the_first(settings: Settings) -> None:
    strict = settings.model_copy(
        update={"risk": settings.risk.model_copy(update={"max_total_exposure_pct": Decimal(15)})}
    )
    both = [
        analysis(signal(Action.BUY, **BUY_LEVELS)),
        analysis(signal(Action.BUY, "XRP/USDT", **BUY_LEVELS)),
    ]

    result = coordinate(CoordinationInput("c1", AT, account(), both), strict)

    assert result.outcomes[0].verdict.approved  # type: ignore[union-attr]
    assert result.outcomes[1].verdict.rejections[0].code == "EXPOSURE_LIMIT"  # type: ignore[union-attr]


def test_regime_states_are_kept_per_symbol(settings: Settings) -> None:
    analyses = [analysis(signal(Action.HOLD)), analysis(signal(Action.HOLD, "XRP/USDT"))]

    result = coordinate(CoordinationInput("c1", AT, account(), analyses), settings)

    assert set(result.regimes) == {"BTC/USDT", "XRP/USDT"}


def test_propose_sizes_buys_from_equity_and_ignores_hold_and_close_short() -> None:
    portfolio = Portfolio(
        balances={"USDT": Decimal(5000), "BTC": Decimal(50)}, prices={"BTC/USDT": Decimal(100)}, as_of=AT
    )

    p = propose(signal(Action.BUY, **BUY_LEVELS), Decimal(100), portfolio)

    assert p is not None and p.size_usd == Decimal(1000) and p.side is Side.BUY
    assert propose(signal(Action.HOLD), Decimal(100), portfolio) is None
    assert propose(signal(Action.CLOSE_SHORT), Decimal(100), portfolio) is None


def test_cycle_earlier_than_the_last_one_says_so(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput(
            "c1", AT, account(last_cycle_at=AT + timedelta(days=3)), [analysis(signal(Action.HOLD))]
        ),
        settings,
    )

    assert "precedes the account's last cycle" in result.notes[0]


def test_equity_drop_trips_the_daily_breaker_which_pauses_trading(settings: Settings) -> None:
    from triplegain.risk import initial_risk_state

    risk = initial_risk_state(Decimal(10_600), AT - timedelta(hours=3))  # the day began 6% higher

    result = coordinate(
        CoordinationInput("c1", AT, account(risk=risk), [analysis(signal(Action.BUY, **BUY_LEVELS))]),
        settings,
    )

    assert result.outcomes[0].execution is None and result.coordinator is CoordinatorState.PAUSED
    assert [(c.to_state, c.actor) for c in result.state_changes] == [
        (CoordinatorState.PAUSED, "circuit-breaker")
    ]
    assert result.risk.halted and any("daily_loss breaker tripped" in e for e in result.notes)
    assert any("not acted on, coordinator is paused" in e for e in result.notes)


def test_a_tripped_breaker_refuses_entries_even_when_running(settings: Settings) -> None:
    from triplegain.risk import initial_risk_state
    from triplegain.risk.state import CircuitBreaker

    risk = initial_risk_state(Decimal(10_000), AT).model_copy(
        update={"tripped": {CircuitBreaker.WEEKLY_LOSS: "x"}}
    )

    result = coordinate(
        CoordinationInput("c1", AT, account(risk=risk), [analysis(signal(Action.BUY, **BUY_LEVELS))]),
        settings,
    )

    verdict = result.outcomes[0].verdict
    assert verdict is not None and verdict.status is VerdictStatus.HALTED


def test_the_cycle_events_travel_on_the_bus_linked_by_cycle_and_cause(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput("c1", AT, account(), [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
    )

    kinds = [(m.topic.value, m.payload_type) for m in result.messages]
    assert kinds == [
        ("ta_signals", "TechnicalReport"),
        ("regime_updates", "RegimeAssessment"),
        ("trading_signals", "TradingSignal"),
        ("risk_alerts", "TradeApproved"),
        ("execution_events", "OrderFilled"),
        ("portfolio_updates", "PositionOpened"),
    ]
    signal_msg = result.messages[2]
    assert all(m.correlation_id == "c1" for m in result.messages)
    assert [m.causation_id for m in result.messages[3:]] == [signal_msg.id] * 3
    assert result.dead_letters == []


def test_a_rejected_trade_is_published_as_trade_rejected(settings: Settings) -> None:
    sell = signal(Action.SELL, entry_price=Decimal(100), stop_loss=Decimal(102), take_profit=Decimal(96))

    result = coordinate(CoordinationInput("c1", AT, account(), [analysis(sell)]), settings)

    rejected = [m.payload for m in result.messages if m.payload_type == "TradeRejected"]
    assert rejected[0].verdict.rejections[0].code == "SHORT_NOT_ALLOWED"  # type: ignore[attr-defined]


def test_a_crashing_risk_handler_fails_the_cycle(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import triplegain.coordinator

    def broken(*args: object) -> None:
        raise ArithmeticError("risk engine bug")

    monkeypatch.setattr(triplegain.coordinator, "evaluate", broken)

    with pytest.raises(ArithmeticError, match="risk engine bug"):
        coordinate(
            CoordinationInput("c1", AT, account(), [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
        )


def test_a_failing_observer_is_dead_lettered_retried_and_the_cycle_completes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import triplegain.coordinator

    async def broken(self: object, message: object) -> None:
        raise ConnectionError("report sink down")

    monkeypatch.setattr(triplegain.coordinator._Coordinator, "on_execution_event", broken)

    result = coordinate(
        CoordinationInput("c1", AT, account(), [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
    )

    assert result.outcomes[0].execution is not None
    [letter] = result.dead_letters
    assert letter.message.payload_type == "OrderFilled" and letter.attempts == 2
    assert letter.error == "ConnectionError: report sink down"


def test_skipped_symbol_and_breakers_are_events_too(settings: Settings) -> None:
    from triplegain.risk import initial_risk_state

    risk = initial_risk_state(Decimal(10_600), AT - timedelta(hours=3))

    result = coordinate(
        CoordinationInput("c1", AT, account(risk=risk), [SymbolAnalysis("XRP/USDT", error="no data")]),
        settings,
    )

    kinds = [m.payload_type for m in result.messages]
    assert kinds == ["CircuitBreakerTripped", "CoordinatorStateChanged", "SymbolSkipped"]
    assert result.messages[0].priority.name == "URGENT"
    assert "XRP/USDT skipped: no data" in result.notes


def resolution(
    action: str, symbol: str = "BTC/USDT", kind: str = "regime_conflict", **mods: object
) -> object:
    from triplegain.models.conflicts import Conflict, Modifications, Resolution

    conflict = Conflict(type=kind, symbol=symbol, agents_involved=["x"], description="test", fallback="wait")  # type: ignore[arg-type]
    return Resolution(
        symbol=symbol,
        action=action,
        confidence=0.7,
        reasoning="because",
        decided_by="deepseek",  # type: ignore[arg-type]
        modifications=Modifications(**mods) if mods else None,
        conflicts=[conflict],
    )


def test_a_wait_resolution_stops_that_symbol_only(settings: Settings) -> None:
    both = [
        analysis(signal(Action.BUY, **BUY_LEVELS)),
        analysis(signal(Action.BUY, "XRP/USDT", **BUY_LEVELS)),
    ]

    result = coordinate(
        CoordinationInput("c1", AT, account(), both, resolutions=[resolution("wait")]), settings
    )  # type: ignore[list-item]

    btc, xrp = result.outcomes
    assert btc.execution is None and btc.resolution is not None and btc.resolution.action == "wait"
    assert any("BTC/USDT: BUY not traded: conflict resolved as wait by deepseek" in e for e in result.notes)
    assert xrp.execution is not None and xrp.resolution is None
    assert "ConflictResolved" in [m.payload_type for m in result.messages]


def test_a_modify_resolution_shrinks_the_trade(settings: Settings) -> None:
    res = resolution("modify", size_reduction_pct=50)

    result = coordinate(
        CoordinationInput(
            "c1", AT, account(), [analysis(signal(Action.BUY, **BUY_LEVELS))], resolutions=[res]
        ),
        settings,
    )  # type: ignore[list-item]

    execution = result.outcomes[0].execution
    assert execution is not None and execution.order.size == Decimal(5)
    assert any("size reduced by 50%" in e for e in result.notes)


def test_abort_on_a_regime_change_closes_the_open_long(settings: Settings) -> None:
    acct = account(balances={"USDT": Decimal(9_500), "BTC": Decimal(5)}, positions=[held()])
    res = resolution("abort", kind="regime_change_conflict")

    result = coordinate(
        CoordinationInput("c1", AT, acct, [analysis(signal(Action.HOLD), "97")], resolutions=[res]), settings
    )  # type: ignore[list-item]

    execution = result.outcomes[0].execution
    assert execution is not None and execution.order.intent is Intent.CLOSE
    assert result.portfolio.positions == []


def test_consensus_scales_the_signal_the_risk_engine_sees(settings: Settings) -> None:
    result = coordinate(
        CoordinationInput("c1", AT, account(), [analysis(signal(Action.BUY, confidence=0.6, **BUY_LEVELS))]),
        settings,
    )

    outcome_signal = result.outcomes[0].signal
    assert outcome_signal is not None and outcome_signal.consensus_multiplier == pytest.approx(1.3)
    assert outcome_signal.confidence == pytest.approx(0.78)


def test_a_capped_position_stays_inside_the_cap_after_slippage_and_fees(settings: Settings) -> None:
    big = signal(Action.BUY, **BUY_LEVELS).model_copy(update={"position_size_pct": Decimal(50)})

    result = coordinate(CoordinationInput("c1", AT, account(), [analysis(big)]), settings)

    fill = result.outcomes[0].execution.fill  # type: ignore[union-attr]
    cap = settings.risk.max_position_pct / 100
    assert fill is not None and fill.price > Decimal(100)  # slipped against us
    assert fill.notional <= Decimal(10_000) * cap  # at the fill price, against the equity before
    [position] = result.portfolio.positions
    assert position.size * Decimal(100) <= result.portfolio.equity * cap  # at the market, after the fee
    assert "POSITION_SIZE" in [m.code for m in result.outcomes[0].verdict.modifications]  # type: ignore[union-attr]
