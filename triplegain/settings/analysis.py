"""Settings of the analysis agents: indicator periods, the technical heuristic and regime detection."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator, model_validator

from triplegain.models.analysis import RegimeParameters
from triplegain.models.enums import EntryStrictness, Regime
from triplegain.settings.section import SECTION, Seconds


class IndicatorSettings(BaseModel):
    """Indicator periods (reference spec 4.1)."""

    model_config = SECTION

    rsi_period: int = Field(14, ge=2)
    macd_fast: int = Field(12, ge=2)
    macd_slow: int = Field(26, ge=3)
    macd_signal: int = Field(9, ge=2)
    ema_periods: list[int] = Field(default_factory=lambda: [9, 21, 50, 200])
    sma_periods: list[int] = Field(default_factory=lambda: [20, 50, 200])
    atr_period: int = Field(14, ge=2)
    atr_mean_period: int = Field(20, ge=2, description="Window of the mean ATR behind volatility spikes")
    atr_baseline_period: int = Field(100, ge=10, description="Window of the 'normal' ATR for regimes")
    adx_period: int = Field(14, ge=2)
    bollinger_period: int = Field(20, ge=2)
    bollinger_std: float = Field(2.0, gt=0, le=10)
    bollinger_rank_window: int = Field(100, ge=10)
    choppiness_period: int = Field(14, ge=2)
    volume_period: int = Field(20, ge=2)
    vwap_period: int = Field(24, ge=1)
    roc_period: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _macd_ordered(self) -> IndicatorSettings:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        return self


class TechnicalSettings(BaseModel):
    """The offline technical analysis: four indicator families on 1h, 4h and 1d (`agents.evidence`)."""

    model_config = SECTION

    min_net_votes: int = Field(
        6, ge=1, le=12, description="Long or short only when this many more of the 12 votes agree than oppose"
    )
    momentum_band: float = Field(5, ge=0, le=50, description="RSI this far past 50 counts as momentum")
    trend_fast_ema: int = Field(9, ge=2, description="Fast EMA of the trend family, on every timeframe")
    trend_slow_ema: int = Field(21, ge=3, description="Slow EMA of the trend family, on every timeframe")
    rsi_oversold: float = Field(30, ge=0, le=100)
    rsi_overbought: float = Field(70, ge=0, le=100)
    model_timeout_seconds: Seconds = Field(5, description="llm.technical_model's answer time (spec: 5 s)")
    fast_ema: int = Field(21, ge=2, description="EMA period of the short trend (must be computed)")
    slow_ema: int = Field(50, ge=2, description="EMA period of the medium trend")
    long_ema: int = Field(200, ge=2, description="EMA period of the long trend")
    level_window: int = Field(48, ge=5, description="Candles searched for support and resistance")
    near_level_pct: float = Field(
        1.0, gt=0, le=100, description="Within this percent of a level counts as near it"
    )


def _default_regime_parameters() -> dict[Regime, RegimeParameters]:
    def p(size: str, sl: str, tp: str, strict: EntryStrictness, lev: int) -> RegimeParameters:
        return RegimeParameters(
            position_size_multiplier=Decimal(size),
            stop_loss_multiplier=Decimal(sl),
            take_profit_multiplier=Decimal(tp),
            entry_strictness=strict,
            max_leverage=lev,
        )

    normal, strict, very = EntryStrictness.NORMAL, EntryStrictness.STRICT, EntryStrictness.VERY_STRICT
    return {
        Regime.TRENDING_BULL: p("1.0", "1.2", "2.0", normal, 5),
        Regime.TRENDING_BEAR: p("1.0", "1.2", "2.0", normal, 3),
        Regime.RANGING: p("0.75", "0.8", "1.5", strict, 2),
        Regime.VOLATILE_BULL: p("0.5", "1.5", "2.5", strict, 2),
        Regime.VOLATILE_BEAR: p("0.5", "1.5", "2.5", strict, 2),
        Regime.CHOPPY: p("0.25", "1.0", "1.0", very, 1),
        Regime.BREAKOUT_POTENTIAL: p("0.75", "1.0", "3.0", strict, 3),
    }


class RegimeSettings(BaseModel):
    """Regime classification thresholds, hysteresis and per-regime parameters (reference spec 4.2)."""

    model_config = SECTION

    model_timeout_seconds: Seconds = Field(5, description="llm.regime_model's answer time (spec: 5 s)")
    min_change_confidence: float = Field(0.7, ge=0, le=1)
    change_periods: int = Field(2, ge=1, description="Consecutive detections needed to change regime")
    adx_trending: float = Field(25, ge=0, le=100)
    adx_ranging: float = Field(20, ge=0, le=100)
    choppiness_choppy: float = Field(61.8, ge=0, le=100)
    volatile_atr_ratio: float = Field(
        2.0, gt=1, le=100, description="ATR above this multiple of normal: volatile"
    )
    squeeze_rank: float = Field(0.1, ge=0, le=1, description="Bollinger width percentile that is a squeeze")
    adx_clear: float = Field(10, gt=0, le=100, description="ADX points past a threshold that make it clear")
    di_spread_clear: float = Field(
        0.3, gt=0, le=1, description="(+DI - -DI) / (+DI + -DI) that makes a trend's direction clear"
    )
    atr_ratio_clear: float = Field(0.5, gt=0, le=100, description="ATR ratio past volatile that is clear")
    choppiness_clear: float = Field(
        5, gt=0, le=100, description="Choppiness points past choppy that are clear"
    )
    parameters: dict[Regime, RegimeParameters] = Field(default_factory=_default_regime_parameters)

    @field_validator("parameters")
    @classmethod
    def _complete(cls, parameters: dict[Regime, RegimeParameters]) -> dict[Regime, RegimeParameters]:
        missing = sorted(set(Regime) - set(parameters))
        if missing:
            raise ValueError(f"parameters missing for regimes {missing}")
        return parameters

    @model_validator(mode="after")
    def _adx_ordered(self) -> RegimeSettings:
        if self.adx_ranging > self.adx_trending:
            raise ValueError("adx_ranging must not exceed adx_trending")
        return self
