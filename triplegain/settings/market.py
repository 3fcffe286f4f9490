"""Market settings: which symbols trade, their exchange rules, and where candles come from."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from triplegain.settings.section import SECTION


class SymbolSpec(BaseModel):
    """Exchange rules for one symbol (reference spec 4.7, symbol config)."""

    model_config = SECTION

    min_order_size: Decimal = Field(gt=0, description="Smallest order, in the base asset")
    price_decimals: int = Field(ge=0, le=12)
    size_decimals: int = Field(ge=0, le=12)


def _default_specs() -> dict[str, SymbolSpec]:
    return {
        "BTC/USDT": SymbolSpec(min_order_size=Decimal("0.0001"), price_decimals=2, size_decimals=8),
        "XRP/USDT": SymbolSpec(min_order_size=Decimal("10"), price_decimals=5, size_decimals=0),
    }


class MarketSettings(BaseModel):
    """Which symbols trade and where their candles come from."""

    model_config = SECTION

    symbol_specs: dict[str, SymbolSpec] = Field(default_factory=_default_specs)
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT", "XRP/USDT"], min_length=1)
    source: Literal["replay", "ccxt"] = "replay"
    data_dir: Path | None = Field(None, description="CSV directory for replay; None means the bundled sample")
    exchange: str = "kraken"
    api_url: str | None = Field(
        None, description="The exchange's REST base URL instead of ccxt's (a sandbox; a local fake in tests)"
    )
    exchange_timeout_ms: int = Field(10_000, gt=0, le=600_000)
    rate_limit_ms: int | None = Field(
        None, ge=1, le=60_000, description="ccxt's limiter for candles and tickers (None: the exchange's own)"
    )
    lookback_candles: int = Field(
        1000,
        ge=50,
        le=5_000,
        description="Closed hourly candles fed to the analysis (1h, and the 4h and 1d built from them) and "
        "to the exposure ceilings' volatility",
    )
    min_candles: int = Field(50, ge=2, description="Fewer closed candles than this: skip the symbol")
    replay_start_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="The replay clock: on replay data, a run given no time runs the hour after the account's "
        "last cycle; a fresh account's first cycle this many days before the data ends",
    )
    max_data_age_hours: int = Field(
        2, ge=1, le=24 * 30, description="Newest candle older than this: data is stale"
    )

    @field_validator("symbols")
    @classmethod
    def _symbols_known(cls, symbols: list[str], info: ValidationInfo) -> list[str]:
        specs = info.data.get("symbol_specs", {})
        for symbol in symbols:
            base, sep, quote = symbol.partition("/")
            if not (sep and base and quote == "USDT"):
                raise ValueError(f"symbol {symbol!r} must look like BASE/USDT")
            if symbol not in specs:
                raise ValueError(
                    f"unknown symbol {symbol!r}: allowed are {sorted(specs)} "
                    "(add a market.symbol_specs entry to trade another)"
                )
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must not repeat")
        return symbols

    @model_validator(mode="after")
    def _candles_consistent(self) -> MarketSettings:
        if self.min_candles > self.lookback_candles:
            raise ValueError(f"min_candles ({self.min_candles}) must not exceed lookback_candles")
        return self
