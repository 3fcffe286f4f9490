"""Market data values: one candle, a columnar series of candles, and a market snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CANDLE_SECONDS = 3600


class Candle(BaseModel):
    """One OHLCV candle; `timestamp` is the candle's open time (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp: AwareDatetime = Field(description="Candle open time, UTC")
    open: Decimal = Field(ge=0)
    high: Decimal = Field(ge=0)
    low: Decimal = Field(ge=0)
    close: Decimal = Field(ge=0)
    volume: Decimal = Field(ge=0, description="Volume in the base asset")

    @model_validator(mode="after")
    def _range_consistent(self) -> Candle:
        if self.high < max(self.open, self.close, self.low) or self.low > min(self.open, self.close):
            raise ValueError(f"inconsistent candle at {self.timestamp.isoformat()}: high/low do not bound it")
        return self


@dataclass(frozen=True)
class CandleSeries:
    """Hourly candles as columns (numpy), ascending by open time; cheap to slice and feed to indicators."""

    timestamps: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def slice(self, start: int, stop: int) -> CandleSeries:
        """Rows [start, stop) as a new series sharing memory with this one."""
        return CandleSeries(
            self.timestamps[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    def rows(self) -> list[tuple[int, float, float, float, float, float]]:
        """Each candle as (open time in epoch seconds, open, high, low, close, volume), oldest first."""
        columns = (self.timestamps, self.open, self.high, self.low, self.close, self.volume)
        return list(zip(*(column.tolist() for column in columns), strict=True))

    def shifted(self, seconds: int) -> CandleSeries:
        """The same candles with every timestamp moved by `seconds` (benchmarks build universes this way)."""
        return CandleSeries(
            self.timestamps + seconds, self.open, self.high, self.low, self.close, self.volume
        )

    def open_time(self, index: int) -> datetime:
        """Open time of the candle at `index` as an aware datetime."""
        return datetime.fromtimestamp(int(self.timestamps[index]), tz=UTC)

    def candle(self, index: int) -> Candle:
        """The candle at `index` as a validated model (prices as exact decimals)."""
        return Candle(
            timestamp=self.open_time(index),
            open=to_decimal(self.open[index]),
            high=to_decimal(self.high[index]),
            low=to_decimal(self.low[index]),
            close=to_decimal(self.close[index]),
            volume=to_decimal(self.volume[index]),
        )

    def missing_candles(self) -> int:
        """How many hourly candles are absent between the first and last one (exchange outages)."""
        if len(self) < 2:
            return 0
        steps = np.diff(self.timestamps) // CANDLE_SECONDS
        return int(np.sum(steps[steps > 1] - 1))

    def zero_volume_candles(self) -> int:
        """How many candles traded nothing (placeholders the exchange emits during outages)."""
        return int(np.count_nonzero(self.volume == 0))


def to_decimal(value: float) -> Decimal:
    """A float from a price column as the shortest decimal that round-trips (the CSV's own digits)."""
    return Decimal(repr(float(value)))


class MarketSnapshot(BaseModel):
    """What one symbol's market looked like at a cycle's timestamp, using closed candles only."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    symbol: str
    timestamp: AwareDatetime = Field(description="The cycle's as-of time; no candle closes after it")
    last_candle_at: AwareDatetime = Field(description="Open time of the newest closed candle")
    current_price: Decimal = Field(gt=0, description="Close of the newest closed candle")
    candles: CandleSeries = Field(exclude=True, repr=False)
    source: str = Field(description="Where the data came from, e.g. replay:bundled or ccxt:kraken")
    missing_candles: int = Field(ge=0, description="Hourly candles absent inside the lookback window")
    zero_volume_candles: int = Field(ge=0)

    @property
    def data_age(self) -> timedelta:
        """Time from the close of the newest candle to the cycle's timestamp."""
        return self.timestamp - (self.last_candle_at + timedelta(seconds=CANDLE_SECONDS))
