from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from triplegain.exits import find_exit
from triplegain.models.market import CandleSeries
from triplegain.models.trading import Position

OPENED = datetime(2024, 6, 1, 12, tzinfo=UTC)


def series(
    rows: list[tuple[float, float, float, float]], start: datetime = OPENED - timedelta(hours=2)
) -> CandleSeries:
    ts = int(start.timestamp()) + np.arange(len(rows), dtype=np.int64) * 3600
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return CandleSeries(ts, o, h, lo, c, np.ones(len(rows)))


def position(stop: str = "95", target: str = "110") -> Position:
    return Position(
        id="p",
        symbol="BTC/USDT",
        size=Decimal(1),
        entry_price=Decimal(100),
        stop_loss=Decimal(stop),
        take_profit=Decimal(target),
        opened_at=OPENED,
        cycle_id="c",
    )


def test_candles_before_the_position_opened_are_ignored() -> None:
    candles = series([(100, 120, 80, 100), (100, 120, 80, 100), (100, 105, 97, 101)])

    assert find_exit(position(), candles) is None


def test_stop_touch_fills_at_the_stop_with_slippage() -> None:
    candles = series([(100, 101, 99, 100), (100, 101, 99, 100), (100, 104, 98, 99), (99, 100, 94, 95)])

    trigger = find_exit(position(), candles)

    assert trigger is not None and trigger.reason == "stop_loss" and trigger.price == 95 and trigger.slippage
    assert trigger.at == OPENED + timedelta(hours=2)


def test_take_profit_fills_at_the_target_without_slippage() -> None:
    candles = series([(1, 1, 1, 1), (1, 1, 1, 1), (100, 111, 99, 110)])

    trigger = find_exit(position(), candles)

    assert (
        trigger is not None
        and trigger.reason == "take_profit"
        and trigger.price == 110
        and not trigger.slippage
    )


def test_candle_touching_both_is_read_as_the_stop() -> None:
    candles = series([(1, 1, 1, 1), (1, 1, 1, 1), (100, 111, 94, 100)])

    assert find_exit(position(), candles).reason == "stop_loss"  # type: ignore[union-attr]


def test_gap_below_the_stop_fills_at_the_open() -> None:
    candles = series([(1, 1, 1, 1), (1, 1, 1, 1), (90, 92, 88, 91)])

    assert find_exit(position(), candles).price == 90  # type: ignore[union-attr]


def test_a_trailing_stop_moves_up_behind_the_high_and_never_down() -> None:
    from triplegain.exits import Trailing, trailed_stop

    trail = Trailing(activation_pct=1.0, distance_pct=1.5)
    rising = series([(100, 100, 100, 100), (100, 100, 100, 100), (100, 104, 100, 104), (104, 104, 103, 103)])

    stop = trailed_stop(position(), rising, trail)

    assert stop is not None and abs(float(stop) - 104 * 0.985) < 1e-9
    assert find_exit(position(), rising, trail) is None
    below_activation = series([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100.5, 99, 100)])
    assert trailed_stop(position(), below_activation, trail) is None


def test_a_trailing_stop_exit_is_named_and_never_uses_the_same_candles_high() -> None:
    from triplegain.exits import Trailing

    trail = Trailing(activation_pct=1.0, distance_pct=1.5)
    # The third candle rises to 104 and falls to 101: whether the high came first is unknown, so no exit.
    candles = series([(100, 100, 100, 100), (100, 100, 100, 100), (100, 104, 101, 103), (103, 103, 100, 101)])

    trigger = find_exit(position(), candles, trail)

    assert trigger is not None and trigger.reason == "trailing_stop"
    assert trigger.at == OPENED + timedelta(hours=2) and abs(trigger.price - 104 * 0.985) < 1e-9
