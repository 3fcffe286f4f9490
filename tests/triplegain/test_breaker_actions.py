"""Circuit breakers act through the broker and the coordinator state; degradation and order errors bite."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.triplegain.factories import AT
from tests.triplegain.test_coordinator import BUY_LEVELS, account, analysis, held, signal
from triplegain.coordinator import coordinate
from triplegain.cycle_types import CoordinationInput, next_account
from triplegain.degradation import Health
from triplegain.models.enums import Action, CoordinatorState, DegradationLevel, OrderStatus, VerdictStatus
from triplegain.models.trading import Position
from triplegain.risk.state import CircuitBreaker, RiskState, initial_risk_state
from triplegain.settings import Settings, load_settings


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def marks(day: str, week: str, peak: str, **fields: object) -> RiskState:
    """Risk memory whose day, week and peak started at the given equities (this day and week)."""
    base = initial_risk_state(Decimal(day), AT - timedelta(minutes=30))
    return base.model_copy(
        update={"week_start_equity": Decimal(week), "peak_equity": Decimal(peak), **fields}
    )


def holding(**overrides: object):  # type: ignore[no-untyped-def]
    """5 BTC bought at 100 and 9,500 USDT: equity 10,000 at a price of 100."""
    fields: dict[str, object] = {
        "balances": {"USDT": Decimal(9_500), "BTC": Decimal(5)},
        "positions": [held()],
    }
    return account(**(fields | overrides))


def test_max_drawdown_halts_and_closes_every_position_through_the_broker(settings: Settings) -> None:
    acct = holding(risk=marks("10000", "10000", "13000"))  # 23% below the peak

    result = coordinate(CoordinationInput("c1", AT, acct, [analysis(signal(Action.HOLD))]), settings)

    assert result.coordinator is CoordinatorState.HALTED
    assert [(c.to_state, c.actor) for c in result.state_changes] == [
        (CoordinatorState.HALTED, "circuit-breaker")
    ]
    assert result.portfolio.positions == [] and result.portfolio.balances["BTC"] == 0
    (closing,) = result.outcomes[0].exits
    assert closing.order.status is OrderStatus.FILLED
    assert closing.closed_positions[0].close_reason == "circuit_breaker"
    assert result.risk.consecutive_losses == 1  # the close went through the loss bookkeeping too


def test_while_drawdown_stays_tripped_positions_without_a_price_are_closed_next_run(
    settings: Settings,
) -> None:
    tripped = marks("10000", "10000", "13000", tripped={CircuitBreaker.MAX_DRAWDOWN: "tripped last run"})
    acct = holding(coordinator=CoordinatorState.HALTED, risk=tripped)
    xrp_only = [analysis(signal(Action.HOLD, symbol="XRP/USDT"))]

    first = coordinate(CoordinationInput("c1", AT, acct, xrp_only), settings)
    assert len(first.portfolio.positions) == 1
    assert any("cannot close 1 position(s) now, no price" in e for e in first.notes)

    second = coordinate(
        CoordinationInput(
            "c2", AT + timedelta(hours=1), next_account(acct, first), [analysis(signal(Action.HOLD))]
        ),
        settings,
    )
    assert second.portfolio.positions == [] and second.outcomes[0].exits[0].order.status is OrderStatus.FILLED


def test_weekly_loss_sells_half_of_every_position(settings: Settings) -> None:
    acct = holding(risk=marks("10000", "11500", "11500"))  # 13% down this week, 13% below the peak

    result = coordinate(CoordinationInput("c1", AT, acct, [analysis(signal(Action.HOLD))]), settings)

    (rest,) = result.portfolio.positions
    assert rest.id == "p1" and rest.size == Decimal("2.5")
    (reduction,) = result.outcomes[0].exits
    assert reduction.order.size == Decimal("2.5") and reduction.reduced_positions == [rest]
    sold = reduction.closed_positions[0]
    assert sold.id != "p1" and sold.size == Decimal("2.5") and sold.close_reason == "circuit_breaker"
    assert result.portfolio.balances["BTC"] == Decimal("2.5")
    assert (
        result.coordinator is CoordinatorState.RUNNING and CircuitBreaker.WEEKLY_LOSS in result.risk.tripped
    )


def test_daily_loss_pauses_and_the_day_change_resumes_what_the_breaker_paused(settings: Settings) -> None:
    tripped = holding(risk=marks("10600", "10600", "10600"))
    paused = coordinate(CoordinationInput("c1", AT, tripped, [analysis(signal(Action.HOLD))]), settings)
    assert paused.coordinator is CoordinatorState.PAUSED

    tomorrow = AT + timedelta(days=1)
    after = next_account(tripped, paused)
    resumed = coordinate(
        CoordinationInput("c2", tomorrow, after, [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
    )

    assert resumed.coordinator is CoordinatorState.RUNNING
    assert resumed.state_changes[-1].reason == "daily loss breaker reset at the day change"
    assert resumed.outcomes[0].execution is not None


def test_the_day_change_does_not_resume_a_pause_someone_made(settings: Settings) -> None:
    acct = holding(
        coordinator=CoordinatorState.PAUSED,
        state_set_by="ana",
        risk=marks("10600", "10600", "10600", tripped={CircuitBreaker.DAILY_LOSS: "x"}),
    )

    result = coordinate(
        CoordinationInput("c2", AT + timedelta(days=1), acct, [analysis(signal(Action.HOLD))]), settings
    )

    assert result.coordinator is CoordinatorState.PAUSED and result.state_changes == []
    assert CircuitBreaker.DAILY_LOSS not in result.risk.tripped


def test_a_breaker_never_lifts_a_halt(settings: Settings) -> None:
    acct = holding(coordinator=CoordinatorState.HALTED, risk=marks("10600", "10000", "10600"))

    result = coordinate(CoordinationInput("c1", AT, acct, [analysis(signal(Action.HOLD))]), settings)

    assert result.coordinator is CoordinatorState.HALTED and result.state_changes == []


def test_emergency_opens_nothing_but_still_closes(settings: Settings) -> None:
    emergency = Health(llm_failures=9, level=DegradationLevel.EMERGENCY)

    buy = coordinate(
        CoordinationInput("c1", AT, account(health=emergency), [analysis(signal(Action.BUY, **BUY_LEVELS))]),
        settings,
    )
    close = coordinate(
        CoordinationInput("c2", AT, holding(health=emergency), [analysis(signal(Action.SELL))]), settings
    )

    verdict = buy.outcomes[0].verdict
    assert verdict is not None and verdict.status is VerdictStatus.REJECTED
    assert verdict.rejections[0].code == "DEGRADED_EMERGENCY" and buy.outcomes[0].execution is None
    assert close.outcomes[0].execution is not None and close.portfolio.positions == []


def test_degradation_changes_travel_on_the_bus_and_into_the_report(settings: Settings) -> None:
    from triplegain.degradation import HealthOutcome

    fails = [HealthOutcome(kind="llm", ok=False, what=f"call {i}") for i in range(3)]

    result = coordinate(
        CoordinationInput("c1", AT, account(), [analysis(signal(Action.HOLD))], outcomes=fails), settings
    )

    changes = [m for m in result.messages if m.payload_type == "DegradationChanged"]
    assert len(changes) == 1 and changes[0].topic.value == "system_events"
    assert (
        result.health.level is DegradationLevel.REDUCED
        and result.degradation_changes[0].name == "degradation_increased"
    )
    assert any(e.startswith("degradation_increased: normal -> reduced") for e in result.notes)


def test_the_third_order_error_in_a_row_starts_a_cooldown_for_every_entry(settings: Settings) -> None:
    poor = account(
        balances={"USDT": Decimal(50)},
        risk=marks("50", "50", "50", execution_errors=2),
    )
    btc = analysis(signal(Action.BUY, **BUY_LEVELS))
    xrp = analysis(signal(Action.BUY, symbol="XRP/USDT", **BUY_LEVELS))

    result = coordinate(CoordinationInput("c1", AT, poor, [btc, xrp]), settings)

    assert result.outcomes[0].execution is not None
    assert result.outcomes[0].execution.order.status is OrderStatus.REJECTED  # below the minimum notional
    assert result.risk.execution_cooldown_until == AT + timedelta(minutes=15)
    verdict = result.outcomes[1].verdict
    assert verdict is not None and verdict.rejections[0].code == "IN_COOLDOWN"
    assert "repeated order errors" in verdict.rejections[0].message
    assert any("3 order errors in a row" in e for e in result.notes)


def test_a_fill_clears_the_order_error_count(settings: Settings) -> None:
    acct = account(risk=marks("10000", "10000", "10000", execution_errors=2))

    result = coordinate(
        CoordinationInput("c1", AT, acct, [analysis(signal(Action.BUY, **BUY_LEVELS))]), settings
    )

    assert result.risk.execution_errors == 0 and result.risk.execution_cooldown_until is None


def test_trailing_stops_follow_the_price_and_exit_when_enabled(settings: Settings) -> None:
    trailing = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"trailing_stop": True})}
    )
    early = replace(
        holding(),
        positions=[
            Position(
                id="p1",
                symbol="BTC/USDT",
                size=Decimal(5),
                entry_price=Decimal(90),
                stop_loss=Decimal(85),
                take_profit=Decimal(150),
                opened_at=AT - timedelta(hours=10),
                cycle_id="c0",
            )
        ],
    )

    off = coordinate(CoordinationInput("c1", AT, early, [analysis(signal(Action.HOLD))]), settings)
    on = coordinate(CoordinationInput("c1", AT, early, [analysis(signal(Action.HOLD))]), trailing)

    assert off.portfolio.positions and off.moved_stops == []
    (exit_,) = on.outcomes[0].exits
    assert exit_.closed_positions[0].close_reason == "trailing_stop"
    assert exit_.closed_positions[0].realized_pnl is not None and exit_.closed_positions[0].realized_pnl > 0


def test_no_breaker_trips_on_an_equity_that_misses_a_held_assets_price(settings: Settings) -> None:
    acct = holding(risk=marks("10000", "10000", "10000"))  # BTC is half the account
    xrp_only = [analysis(signal(Action.HOLD, symbol="XRP/USDT"))]

    result = coordinate(CoordinationInput("c1", AT, acct, xrp_only), settings)

    assert result.risk.tripped == {} and result.coordinator is CoordinatorState.RUNNING
    assert any("circuit breakers not checked this run: no price for BTC" in e for e in result.notes)
