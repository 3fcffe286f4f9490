"""Stop-loss and take-profit exits found in the candles since a position opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from triplegain.models.market import CANDLE_SECONDS, CandleSeries
from triplegain.models.trading import Position


@dataclass(frozen=True)
class ExitTrigger:
    """A level a long position touched: where it fills, why, and when the candle closed."""

    price: float
    reason: str
    at: datetime
    slippage: bool


def find_exit(position: Position, candles: CandleSeries) -> ExitTrigger | None:
    """The first stop-loss or take-profit touch in candles that opened at or after the position did.

    When one candle touches both, the stop is assumed first (the cautious reading). A candle that opens
    beyond the level fills at its open (a gap), never at a price that did not trade.
    """
    start = int(np.searchsorted(candles.timestamps, position.opened_at.timestamp(), side="left"))
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
