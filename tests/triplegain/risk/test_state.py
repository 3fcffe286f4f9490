from datetime import timedelta
from decimal import Decimal

from tests.triplegain.factories import AT
from triplegain.events import CircuitBreakerReset
from triplegain.risk import initial_risk_state, mark_equity, record_trade_result, reset_drawdown_breaker
from triplegain.risk.state import CircuitBreaker
from triplegain.settings import RiskSettings

S = RiskSettings()
E = Decimal(10_000)


def test_daily_loss_trips_at_5_percent_and_resets_next_utc_day() -> None:
    state = initial_risk_state(E, AT)

    tripped, events = mark_equity(state, Decimal(9_500), AT + timedelta(hours=1), S)
    next_day, reset_events = mark_equity(tripped, Decimal(9_500), AT + timedelta(days=1), S)

    assert CircuitBreaker.DAILY_LOSS in tripped.tripped and tripped.halted
    assert events[0].breaker == "daily_loss" and "5.00% down since the day began" in events[0].reason  # type: ignore[union-attr]
    assert not next_day.halted and next_day.day_start_equity == Decimal(9_500)
    assert reset_events[0] == CircuitBreakerReset(breaker="daily_loss")


def test_daily_loss_below_threshold_does_not_trip() -> None:
    state, events = mark_equity(initial_risk_state(E, AT), Decimal(9_501), AT, S)

    assert not state.halted and events == []


def test_weekly_loss_trips_and_resets_on_a_new_iso_week() -> None:
    monday = AT + timedelta(days=2)  # 2024-06-03 is a Monday
    state = initial_risk_state(E, monday)
    state, _ = mark_equity(state, Decimal(9_600), monday + timedelta(days=1), S)
    state, _ = mark_equity(state, Decimal(9_300), monday + timedelta(days=2), S)
    state, _ = mark_equity(state, Decimal(8_990), monday + timedelta(days=3), S)

    assert set(state.tripped) == {CircuitBreaker.WEEKLY_LOSS}

    state, _ = mark_equity(state, Decimal(8_990), monday + timedelta(days=7), S)
    assert not state.halted


def test_drawdown_needs_a_manual_reset() -> None:
    state, _ = mark_equity(initial_risk_state(E, AT), Decimal(12_000), AT, S)
    state, events = mark_equity(state, Decimal(9_500), AT + timedelta(days=1), S)
    later, _ = mark_equity(state, Decimal(9_600), AT + timedelta(days=30), S)

    assert CircuitBreaker.MAX_DRAWDOWN in state.tripped and "20.83%" in events[0].reason  # type: ignore[union-attr]
    assert CircuitBreaker.MAX_DRAWDOWN in later.tripped
    cleared = reset_drawdown_breaker(later, Decimal(9_600))
    assert not cleared.halted and cleared.peak_equity == Decimal(9_600)


def test_loss_streak_sets_longer_cooldowns_and_a_win_clears_it() -> None:
    state = initial_risk_state(E, AT)
    for _ in range(3):
        state = record_trade_result(state, "BTC/USDT", Decimal(-5), AT, S)

    assert state.consecutive_losses == 3
    assert state.cooldowns["BTC/USDT"] == AT + timedelta(minutes=30)
    assert state.in_cooldown("BTC/USDT", AT + timedelta(minutes=29))
    assert not state.in_cooldown("XRP/USDT", AT)

    won = record_trade_result(state, "XRP/USDT", Decimal(5), AT, S)
    assert won.consecutive_losses == 0 and won.cooldowns["XRP/USDT"] == AT + timedelta(minutes=5)


def test_state_round_trips_through_json() -> None:
    state, _ = mark_equity(initial_risk_state(E, AT), Decimal(9_000), AT, S)
    state = record_trade_result(state, "BTC/USDT", Decimal(-1), AT, S)

    assert type(state).model_validate_json(state.model_dump_json()) == state


def test_order_errors_in_a_row_start_a_cooldown_and_a_fill_clears_the_count() -> None:
    from datetime import timedelta

    from triplegain.risk.state import record_execution
    from triplegain.settings import RiskSettings

    s = RiskSettings()
    state = initial_risk_state(Decimal(1000), AT)
    for _ in range(2):
        state, started = record_execution(state, False, AT, s)
        assert not started
    cleared, _ = record_execution(state, True, AT, s)
    assert cleared.execution_errors == 0

    state, started = record_execution(state, False, AT, s)

    assert started and state.execution_cooldown_until == AT + timedelta(minutes=15)
    assert state.in_execution_cooldown(AT + timedelta(minutes=14)) and not state.in_execution_cooldown(
        AT + timedelta(minutes=15)
    )
