"""Stop-loss, take-profit and trailing-stop exits found in the candles since a position opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from triplegain.models.market import CANDLE_SECONDS, CandleSeries, to_decimal
from triplegain.models.trading import Position

HUNDRED = 100.0


@dataclass(frozen=True)
class Trailing:
    """A trailing stop: active from `activation_pct` profit, `distance_pct` behind the best high since."""

    activation_pct: float
    distance_pct: float


@dataclass(frozen=True)
class ExitTrigger:
    """A level a long position touched: where it fills, why, and when the candle closed."""

    price: float
    reason: str
    at: datetime
    slippage: bool


def find_exit(
    position: Position, candles: CandleSeries, trailing: Trailing | None = None
) -> ExitTrigger | None:
    """The first stop-loss or take-profit touch in candles that opened at or after the position did.

    When one candle touches both, the stop is assumed first (the cautious reading). A candle that opens
    beyond the level fills at its open (a gap), never at a price that did not trade. With `trailing`, the
    stop follows the best high candle by candle; a candle is checked against the stop as it stood before
    that candle (its own high cannot have come first).
    """
    if trailing is not None:
        return _walk(position, candles, trailing)[0]
    start = _start(position, candles)
    lows, highs, opens = candles.low[start:], candles.high[start:], candles.open[start:]
    stop = float(position.stop_loss) if position.stop_loss is not None else -np.inf
    target = float(position.take_profit) if position.take_profit is not None else np.inf
    hits = np.flatnonzero((lows <= stop) | (highs >= target))
    if hits.size == 0:
        return None
    i = int(hits[0])
    at = candles.open_time(start + i) + timedelta(seconds=CANDLE_SECONDS)
    if lows[i] <= stop:
        return ExitTrigger(min(stop, float(opens[i])), "stop_loss", at, slippage=True)
    return ExitTrigger(max(target, float(opens[i])), "take_profit", at, slippage=False)


def trailed_stop(position: Position, candles: CandleSeries, trailing: Trailing) -> Decimal | None:
    """The stop-loss after trailing through every candle since entry, when it moved above the original."""
    stop = _walk(position, candles, trailing)[1]
    if stop is None or (position.stop_loss is not None and stop <= position.stop_loss):
        return None
    return stop


def _start(position: Position, candles: CandleSeries) -> int:
    return int(np.searchsorted(candles.timestamps, position.opened_at.timestamp(), side="left"))


def _walk(
    position: Position, candles: CandleSeries, trailing: Trailing
) -> tuple[ExitTrigger | None, Decimal | None]:
    start = _start(position, candles)
    stop = float(position.stop_loss) if position.stop_loss is not None else -np.inf
    target = float(position.take_profit) if position.take_profit is not None else np.inf
    entry = float(position.entry_price)
    activation = entry * (1 + trailing.activation_pct / HUNDRED)
    best = -np.inf
    moved = False
    for i in range(start, len(candles.timestamps)):
        low, high, open_ = float(candles.low[i]), float(candles.high[i]), float(candles.open[i])
        at = candles.open_time(i) + timedelta(seconds=CANDLE_SECONDS)
        if low <= stop:
            reason = "trailing_stop" if moved else "stop_loss"
            return ExitTrigger(min(stop, open_), reason, at, slippage=True), None
        if high >= target:
            return ExitTrigger(max(target, open_), "take_profit", at, slippage=False), None
        best = max(best, high)
        if best >= activation:
            trail = best * (1 - trailing.distance_pct / HUNDRED)
            if trail > stop:
                stop, moved = trail, True
    return None, to_decimal(stop) if moved else None
