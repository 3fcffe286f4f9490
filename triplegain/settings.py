"""One root settings object: every threshold named, with the reference system's defaults.

Sources, highest priority first: keyword arguments, environment variables (prefix `TRIPLEGAIN_`, nested
keys joined by `__`, e.g. `TRIPLEGAIN_RISK__MAX_LEVERAGE=3`), an optional YAML file (`TRIPLEGAIN_CONFIG_FILE`
or `load_settings(path)`), then the defaults below. Invalid values fail at load with a `ConfigError` that
names the key, the value and what is allowed.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.llm.breaker import BreakerPolicy
from triplegain.llm.models import ProviderConfig
from triplegain.models.analysis import RegimeParameters
from triplegain.models.enums import EntryStrictness, Regime

_SECTION = ConfigDict(extra="forbid", frozen=True)
Percent = Decimal
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class SymbolSpec(BaseModel):
    """Exchange rules for one symbol (reference spec 4.7, symbol config)."""

    model_config = _SECTION

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

    model_config = _SECTION

    symbol_specs: dict[str, SymbolSpec] = Field(default_factory=_default_specs)
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT", "XRP/USDT"], min_length=1)
    source: Literal["replay", "ccxt"] = "replay"
    data_dir: Path | None = Field(None, description="CSV directory for replay; None means the bundled sample")
    exchange: str = "kraken"
    exchange_timeout_ms: int = Field(10_000, gt=0)
    lookback_candles: int = Field(300, ge=50, description="Closed hourly candles fed to the indicators")
    min_candles: int = Field(50, ge=2, description="Fewer closed candles than this: skip the symbol")
    max_data_age_hours: int = Field(2, ge=1, description="Newest candle older than this: data is stale")

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


class IndicatorSettings(BaseModel):
    """Indicator periods (reference spec 4.1)."""

    model_config = _SECTION

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
    bollinger_std: float = Field(2.0, gt=0)
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
    """The offline technical-analysis heuristic (reference spec 4.1 fallback)."""

    model_config = _SECTION

    rsi_long_above: float = Field(60, ge=0, le=100)
    rsi_short_below: float = Field(40, ge=0, le=100)
    rsi_oversold: float = Field(30, ge=0, le=100)
    rsi_overbought: float = Field(70, ge=0, le=100)
    heuristic_confidence: float = Field(0.25, ge=0, le=1)
    heuristic_strength: float = Field(0.5, ge=0, le=1)
    fast_ema: int = Field(21, ge=2, description="EMA period of the short trend (must be computed)")
    slow_ema: int = Field(50, ge=2, description="EMA period of the medium trend")
    long_ema: int = Field(200, ge=2, description="EMA period of the long trend")
    level_window: int = Field(48, ge=5, description="Candles searched for support and resistance")
    near_level_pct: float = Field(1.0, gt=0, description="Within this percent of a level counts as near it")


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

    model_config = _SECTION

    min_change_confidence: float = Field(0.7, ge=0, le=1)
    change_periods: int = Field(2, ge=1, description="Consecutive detections needed to change regime")
    adx_trending: float = Field(25, ge=0, le=100)
    adx_ranging: float = Field(20, ge=0, le=100)
    choppiness_choppy: float = Field(61.8, ge=0, le=100)
    volatile_atr_ratio: float = Field(2.0, gt=1, description="ATR above this multiple of normal: volatile")
    squeeze_rank: float = Field(0.1, ge=0, le=1, description="Bollinger width percentile that is a squeeze")
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


class OfflineModelSettings(BaseModel):
    """The deterministic offline decision model that votes when no LLM is configured."""

    model_config = _SECTION

    min_action_confidence: float = Field(0.65, ge=0, le=1, description="BUY/SELL only at this confidence")
    base_confidence: float = Field(0.55, ge=0, le=1)
    trend_bonus: float = Field(0.1, ge=0, le=1, description="Added when ADX shows a trend")
    regime_bonus: float = Field(0.1, ge=0, le=1, description="Added when the regime agrees")
    volume_bonus: float = Field(0.05, ge=0, le=1, description="Added when volume is above average")
    max_confidence: float = Field(0.9, ge=0, le=1)
    stop_atr_multiplier: Decimal = Field(Decimal("2.0"), gt=0)
    reward_risk: Decimal = Field(Decimal("2.0"), gt=0)
    position_size_pct: Decimal = Field(Decimal("10"), gt=0, le=100)


class DecisionSettings(BaseModel):
    """Vote aggregation over N models (reference spec 4.4)."""

    model_config = _SECTION

    min_quorum: int = Field(4, ge=1, description="Scaled down to the number of configured models")
    min_consensus: float = Field(0.5, ge=0, le=1, description="Winning share at or below this: HOLD")
    unanimous_boost: float = Field(0.15, ge=0, le=1)
    strong_majority: float = Field(0.83, ge=0, le=1)
    strong_majority_boost: float = Field(0.10, ge=0, le=1)
    majority: float = Field(0.67, ge=0, le=1)
    majority_boost: float = Field(0.05, ge=0, le=1)
    timeout_seconds: float = Field(30, gt=0)
    offline: OfflineModelSettings = Field(default_factory=OfflineModelSettings)


def _default_regime_confidence() -> dict[str, float]:
    return {
        "trending_bull": 0.55,
        "trending_bear": 0.55,
        "ranging": 0.60,
        "volatile_bull": 0.65,
        "volatile_bear": 0.65,
        "choppy": 0.75,
        "breakout_potential": 0.60,
        "unknown": 0.70,
    }


def _default_regime_leverage() -> dict[str, int]:
    return {
        "trending_bull": 5,
        "trending_bear": 3,
        "ranging": 2,
        "volatile_bull": 2,
        "volatile_bear": 2,
        "choppy": 1,
        "breakout_potential": 3,
        "unknown": 1,
    }


def _default_correlations() -> dict[str, float]:
    return {"BTC/USDT|XRP/USDT": 0.75, "BTC/USDT|XRP/BTC": 0.60, "XRP/USDT|XRP/BTC": 0.85}


class ConsensusSettings(BaseModel):
    """How agreement among TA, regime and sentiment scales a signal's confidence (reference spec 3.8)."""

    model_config = _SECTION

    high_agreement_threshold: float = Field(0.66, ge=0, le=1)
    low_agreement_threshold: float = Field(0.33, gt=0, le=1)
    max_confidence_boost: float = Field(0.30, ge=0, le=1)
    max_confidence_penalty: float = Field(0.15, ge=0, le=1)
    buy_regimes: list[Regime] = Field(
        default_factory=lambda: [Regime.TRENDING_BULL, Regime.BREAKOUT_POTENTIAL],
        description="Regimes that agree with a BUY (the reference's trending_up and breakout)",
    )
    sell_regimes: list[Regime] = Field(default_factory=lambda: [Regime.TRENDING_BEAR])

    @model_validator(mode="after")
    def _ordered(self) -> ConsensusSettings:
        if self.low_agreement_threshold > self.high_agreement_threshold:
            raise ValueError("low_agreement_threshold must not exceed high_agreement_threshold")
        return self


def _default_keywords() -> dict[str, list[str]]:
    return {"BTC/USDT": ["bitcoin", "btc"], "XRP/USDT": ["xrp", "ripple"]}


class SentimentSettings(BaseModel):
    """The sentiment agent (reference spec 4.3): news, bands, weights, validity."""

    model_config = _SECTION

    news_dir: Path | None = Field(
        None, description="Headlines CSV directory; None means the bundled May 2022"
    )
    lookback_hours: int = Field(24, ge=1, description="Headlines from this long before the as-of time")
    max_headlines: int = Field(30, ge=1, description="Headlines per prompt, newest first")
    min_symbol_headlines: int = Field(5, ge=0, description="Fewer about the asset: add general headlines")
    keywords: dict[str, list[str]] = Field(default_factory=_default_keywords, description="Symbol -> words")
    validity_minutes: int = Field(60, ge=1, description="How long a report stays usable by trading cycles")
    timeout_seconds: float = Field(30, gt=0, description="All models together")
    min_confidence: float = Field(0.3, ge=0, le=1, description="Floor of the aggregated confidence")
    weights: dict[str, float] = Field(default_factory=dict, description="Provider -> weight (default 1.0)")
    very_bullish_from: float = Field(0.6, ge=-1, le=1)
    bullish_from: float = Field(0.2, ge=-1, le=1)
    neutral_from: float = Field(-0.2, ge=-1, le=1)
    bearish_from: float = Field(-0.6, ge=-1, le=1)
    max_events: int = Field(5, ge=0)
    max_narratives: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _bands_descend(self) -> SentimentSettings:
        bands = [self.very_bullish_from, self.bullish_from, self.neutral_from, self.bearish_from]
        if bands != sorted(bands, reverse=True):
            raise ValueError(f"score bands must descend: {bands}")
        return self


class ConflictSettings(BaseModel):
    """Conflict detection and resolution (reference spec 3.9 to 3.11)."""

    model_config = _SECTION

    ta_sentiment: bool = Field(True, description="Detect TA against sentiment")
    choppy_regime: bool = Field(True, description="Detect a trade in a choppy regime")
    regime_change: bool = Field(True, description="Detect a regime turning against an open position")
    invoke_llm_threshold: float = Field(0.2, ge=0, le=1, description="TA/sentiment conflict only when closer")
    resolution_budget_seconds: float = Field(10, gt=0, description="The whole resolution, fallback included")
    hedge_after_share: float = Field(
        0.5, gt=0, le=1, description="Start the fallback in parallel once this share of the budget has passed"
    )
    max_tokens: int = Field(500, ge=50)
    min_leverage: int = Field(1, ge=1)
    max_leverage: int = Field(5, ge=1)
    max_size_reduction_pct: Decimal = Field(Decimal(100), ge=0, le=100)
    max_entry_adjustment_pct: Decimal = Field(Decimal(50), ge=0, le=100)
    min_entry_price: Decimal = Field(Decimal("0.0001"), gt=0)


class LossStreakStep(BaseModel):
    """Restrictions after a streak of losing trades (reference spec 4.6: 3 and 5 losses)."""

    model_config = _SECTION

    confidence_add: float = Field(ge=0, le=1, description="Added to the minimum confidence")
    cooldown_minutes: int = Field(ge=0, description="Cooldown after the losing trade that reached the step")
    max_leverage: int = Field(ge=1)
    size_reduction_pct: Percent = Field(Decimal(0), ge=0, le=100)


class RiskSettings(BaseModel):
    """Risk-engine limits, circuit breakers and cooldowns (reference spec 4.6 and 5.3)."""

    model_config = _SECTION

    stop_loss_required: bool = True
    min_stop_pct: Percent = Field(Decimal("0.5"), ge=0)
    max_stop_pct: Percent = Field(Decimal("5.0"), gt=0)
    min_risk_reward: Decimal = Field(Decimal("1.5"), ge=0)
    regime_min_confidence: dict[str, float] = Field(default_factory=_default_regime_confidence)
    default_min_confidence: float = Field(0.60, ge=0, le=1)
    loss_streak_steps: dict[int, LossStreakStep] = Field(
        default_factory=lambda: {
            3: LossStreakStep(confidence_add=0.10, cooldown_minutes=30, max_leverage=2),
            5: LossStreakStep(
                confidence_add=0.20, cooldown_minutes=60, max_leverage=1, size_reduction_pct=Decimal(50)
            ),
        },
        description="From this many consecutive losses on, the step's restrictions apply (highest step wins)",
    )
    strictness_adjustment: dict[EntryStrictness, float] = Field(
        default_factory=lambda: {
            EntryStrictness.RELAXED: -0.05,
            EntryStrictness.NORMAL: 0.0,
            EntryStrictness.STRICT: 0.05,
            EntryStrictness.VERY_STRICT: 0.10,
        }
    )
    max_position_pct: Percent = Field(Decimal("20"), gt=0, le=100)
    max_risk_per_trade_pct: Percent = Field(Decimal("2"), gt=0, le=100)
    volatility_spike_atr_ratio: float = Field(3.0, gt=1)
    volatility_spike_size_reduction_pct: Percent = Field(Decimal("50"), ge=0, le=100)
    max_leverage: int = Field(5, ge=1)
    regime_max_leverage: dict[str, int] = Field(default_factory=_default_regime_leverage)
    default_regime_leverage: int = Field(2, ge=1)
    drawdown_leverage_limits: dict[Decimal, int] = Field(
        default_factory=lambda: {Decimal(15): 1, Decimal(10): 2, Decimal(5): 3},
        description="Drawdown percent at or above the key caps leverage at the value",
    )
    max_positions_per_symbol: int = Field(2, ge=1)
    max_open_positions: int = Field(5, ge=1)
    max_total_exposure_pct: Percent = Field(Decimal("80"), gt=0)
    max_correlated_exposure_pct: Percent = Field(Decimal("40"), gt=0)
    correlation_threshold: float = Field(0.5, ge=0, le=1)
    correlations: dict[str, float] = Field(default_factory=_default_correlations)
    allow_short: bool = Field(
        False, description="The paper account is spot: a SELL without a long is refused"
    )
    daily_loss_pct: Percent = Field(Decimal("5"), gt=0, le=100)
    weekly_loss_pct: Percent = Field(Decimal("10"), gt=0, le=100)
    max_drawdown_pct: Percent = Field(Decimal("20"), gt=0, le=100)
    post_trade_cooldown_minutes: int = Field(5, ge=0)
    post_loss_cooldown_minutes: int = Field(10, ge=0)
    volatility_spike_cooldown_minutes: int = Field(15, ge=0)
    weekly_loss_reduce_pct: Percent = Field(
        Decimal("50"), gt=0, le=100, description="Share of every position sold when the weekly breaker trips"
    )
    execution_error_limit: int = Field(3, ge=1, description="Consecutive order errors that start a cooldown")
    execution_error_cooldown_minutes: int = Field(15, ge=0, description="No new entry for this long after")

    def loss_step(self, consecutive_losses: int) -> LossStreakStep | None:
        """The restrictions in force after `consecutive_losses` losses in a row, if any."""
        reached = [n for n in self.loss_streak_steps if consecutive_losses >= n]
        return self.loss_streak_steps[max(reached)] if reached else None

    @model_validator(mode="after")
    def _stop_bounds(self) -> RiskSettings:
        if self.min_stop_pct >= self.max_stop_pct:
            raise ValueError("min_stop_pct must be below max_stop_pct")
        return self


class DegradationSettings(BaseModel):
    """Graceful degradation (reference spec 3.17, with its section-10 fixes).

    Consecutive LLM and market-data failures add up; every `failures_per_level` of them is one level:
    NORMAL, REDUCED (no sentiment), LIMITED (only regime conflicts go to a model), EMERGENCY (no model at
    all, deterministic agents only, no new position). `recovery_successes` successes in a row take one
    failure off (hysteresis: a 50% failure rate cannot flap between levels).
    """

    model_config = _SECTION

    failures_per_level: int = Field(3, ge=1)
    recovery_successes: int = Field(3, ge=1)


class WatchSettings(BaseModel):
    """The market watch (every 5 minutes): exits, trailing stops, breakers, snapshots (spec 4.7)."""

    model_config = _SECTION

    trailing_stop: bool = Field(False, description="Trail stops behind the best price since entry")
    trailing_activation_pct: Percent = Field(Decimal("1.0"), gt=0, description="Profit that starts trailing")
    trailing_distance_pct: Percent = Field(
        Decimal("1.5"), gt=0, le=50, description="Distance behind the high"
    )
    crashed_after_minutes: int = Field(
        60, ge=1, description="A run still marked running after this long is reported as crashed"
    )


class BrokerSettings(BaseModel):
    """The paper broker (reference spec 4.7)."""

    model_config = _SECTION

    initial_balances: dict[str, Decimal] = Field(default_factory=lambda: {"USDT": Decimal(10_000)})
    fee_pct: Percent = Field(Decimal("0.26"), ge=0, le=10)
    max_slippage_pct: Percent = Field(Decimal("0.1"), ge=0, le=10)
    min_slippage_factor: Decimal = Field(Decimal("0.5"), ge=0, le=1)
    min_notional_usd: Decimal = Field(Decimal("10"), ge=0)
    seed: int = Field(42, description="Seeds slippage; with the client order id it makes fills reproducible")

    @field_validator("initial_balances")
    @classmethod
    def _non_negative(cls, balances: dict[str, Decimal]) -> dict[str, Decimal]:
        negative = {k: v for k, v in balances.items() if v < 0}
        if negative:
            raise ValueError(f"balances must not be negative: {negative}")
        return balances


class PortfolioSettings(BaseModel):
    """Target allocation (reference spec 4.5); used by rebalancing."""

    model_config = _SECTION

    target_pct: dict[str, Decimal] = Field(
        default_factory=lambda: {"BTC": Decimal("33.33"), "XRP": Decimal("33.33"), "USDT": Decimal("33.34")}
    )
    drift_threshold_pct: Percent = Field(Decimal("5"), gt=0)
    min_trade_usd: Decimal = Field(Decimal("10"), ge=0)
    min_interval_hours: int = Field(24, ge=0, description="Rebalance at most this often unless forced")
    hodl: dict[str, Decimal] = Field(
        default_factory=dict, description="Asset -> amount never sold nor counted by rebalancing (hodl bags)"
    )
    dca_threshold_usd: Decimal = Field(Decimal("500"), ge=0, description="Rebalances this large split up")
    dca_batches: int = Field(6, ge=1)
    dca_interval_hours: float = Field(4, gt=0)

    @field_validator("target_pct")
    @classmethod
    def _sums_to_100(cls, targets: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(v < 0 for v in targets.values()):
            raise ValueError("targets must not be negative")
        total = sum(targets.values(), Decimal(0))
        if abs(total - 100) > Decimal("0.1"):
            raise ValueError(f"targets must sum to 100 (+/- 0.1), they sum to {total}")
        return targets


class BusSettings(BaseModel):
    """The in-flow message bus (reference spec 2, with its review findings fixed)."""

    model_config = _SECTION

    default_ttl_seconds: float = Field(300, gt=0, description="TTL of a message that does not set its own")
    history_per_topic: int = Field(1000, ge=1, description="Messages kept per topic for latest()/history()")
    max_backlog: int = Field(
        1000, ge=1, description="Pending deliveries per subscription before backpressure"
    )
    overflow: Literal["wait", "raise"] = Field(
        "wait", description="Full backlog: publisher waits, or BusOverloaded"
    )
    suspend_after_failures: int = Field(10, ge=1, description="Consecutive handler failures that suspend it")
    dead_letter_attempts: int = Field(
        3, ge=1, description="Delivery attempts before a dead letter is exhausted"
    )
    max_dead_letters: int = Field(
        1000, ge=1, description="Dead letters kept; the oldest are dropped and counted"
    )
    latency_samples: int = Field(
        10_000, ge=100, description="Recent deliveries behind the latency percentiles"
    )


DEFAULT_PROVIDERS = {
    "deepseek": ProviderConfig(
        name="deepseek",
        kind="openai",
        model="deepseek-chat",
        base_url="https://api.deepseek.com/v1",
        price_in_per_mtok=Decimal("0.27"),
        price_out_per_mtok=Decimal("1.10"),
    ),
    "anthropic": ProviderConfig(
        name="anthropic",
        kind="anthropic",
        model="claude-3-5-sonnet-20241022",
        timeout_seconds=60,
        price_in_per_mtok=Decimal(3),
        price_out_per_mtok=Decimal(15),
    ),
}


class LLMSettings(BaseModel):
    """Language models: the providers, who uses which, retries, breakers and the cost budget.

    A name used in `decision_models`, `sentiment_models` or `resolution_chain` is found, at run time, in
    the Prefect Block `llm-<name>` if one is saved, else in `providers` here, else among the built-in
    `DEFAULT_PROVIDERS` (deepseek, anthropic); its API key in the block, in
    `TRIPLEGAIN_LLM__PROVIDERS__<NAME>__API_KEY`, or in the conventional `<NAME>_API_KEY`. A provider with
    neither a key nor a local endpoint is skipped, so without keys every agent takes its offline path:
    by default conflicts go to DeepSeek, then Claude, once their keys are set, and nothing votes but the
    deterministic offline model.
    """

    model_config = _SECTION

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    decision_models: list[str] = Field(default_factory=list, description="Providers voting on trades")
    sentiment_models: list[str] = Field(default_factory=list, description="Providers rating the news")
    resolution_chain: list[str] = Field(
        default_factory=lambda: ["deepseek", "anthropic"], description="Conflict resolver, then fallbacks"
    )
    retries: int = Field(2, ge=0, description="Task retries of one call, for transient errors only")
    retry_backoff_seconds: float = Field(2.0, gt=0, description="First retry delay; doubles each retry")
    retry_jitter: float = Field(0.5, ge=0, le=1, description="Random share added to each delay")
    max_retry_after_seconds: float = Field(30, ge=0, description="A longer Retry-After is not waited for")
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    budget_per_cycle_usd: Decimal = Field(Decimal("0.50"), ge=0)
    budget_per_day_usd: Decimal = Field(Decimal("5.00"), ge=0)

    @field_validator("providers", mode="before")
    @classmethod
    def _names_from_keys(cls, providers: object) -> object:
        """A provider's name defaults to its key in `providers`."""
        if isinstance(providers, dict):
            return {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in providers.items()}
        return providers

    @model_validator(mode="after")
    def _names_match(self) -> LLMSettings:
        for name, provider in self.providers.items():
            if provider.name != name:
                raise ValueError(f"providers.{name} has name {provider.name!r}; they must match")
        return self

    def referenced(self) -> list[str]:
        """Every provider some agent uses, in first-mention order."""
        names = [*self.decision_models, *self.sentiment_models, *self.resolution_chain]
        return list(dict.fromkeys(names))


def default_database_url() -> str:
    """An SQLite file in the per-user data directory."""
    return f"sqlite:///{Path(user_data_dir('triplegain', appauthor=False)) / 'triplegain.db'}"


_yaml_path: ContextVar[Path | None] = ContextVar("triplegain_yaml_path", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """Settings from the YAML file given to `load_settings` or named by TRIPLEGAIN_CONFIG_FILE."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _yaml_path.get() or _env_yaml_path()
        if path is None:
            return {}
        if not path.is_file():
            raise ConfigError([ConfigProblem("config_file", str(path), "a readable YAML file")])
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError([ConfigProblem("config_file", str(path), "a YAML mapping at the top level")])
        return data


def _env_yaml_path() -> Path | None:
    value = os.environ.get("TRIPLEGAIN_CONFIG_FILE")
    return Path(value) if value else None


class Settings(BaseSettings):
    """Everything TripleGain can be configured with; build it once per run with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="TRIPLEGAIN_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: SecretStr = Field(
        default_factory=lambda: SecretStr(default_database_url()),
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user:pass@host/db",
    )
    sqlite_busy_timeout_ms: int = Field(5_000, ge=0)
    statement_timeout_ms: int = Field(30_000, ge=0, description="PostgreSQL statement timeout")
    market: MarketSettings = Field(default_factory=MarketSettings)
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)
    technical: TechnicalSettings = Field(default_factory=TechnicalSettings)
    regime: RegimeSettings = Field(default_factory=RegimeSettings)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    conflicts: ConflictSettings = Field(default_factory=ConflictSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    degradation: DegradationSettings = Field(default_factory=DegradationSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)

    @field_validator("database_url")
    @classmethod
    def _url_supported(cls, url: SecretStr) -> SecretStr:
        try:
            parsed = make_url(url.get_secret_value())
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected sqlite:///path or postgresql+psycopg://..."
            ) from None
        if parsed.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"driver {parsed.drivername!r} unsupported; allowed: {', '.join(SUPPORTED_DRIVERS)}"
            )
        return url

    @model_validator(mode="after")
    def _trend_emas_computed(self) -> Settings:
        t = self.technical
        missing = {t.fast_ema, t.slow_ema, t.long_ema} - set(self.indicators.ema_periods)
        if missing:
            raise ValueError(f"technical EMAs {sorted(missing)} are not in indicators.ema_periods")
        return self

    @model_validator(mode="after")
    def _targets_tradable(self) -> Settings:
        quote = "USDT"
        unknown = [
            a
            for a in self.portfolio.target_pct
            if a != quote and f"{a}/{quote}" not in self.market.symbol_specs
        ]
        if unknown:
            raise ValueError(
                f"portfolio.target_pct assets {unknown} have no {quote} pair in market.symbol_specs; "
                f"known: {sorted(self.market.symbol_specs)}"
            )
        if quote not in self.portfolio.target_pct:
            raise ValueError(f"portfolio.target_pct must include the quote currency {quote}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from overrides, environment, YAML and defaults; raise ConfigError if invalid."""
    token = _yaml_path.set(Path(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError([_problem(err) for err in e.errors()]) from None
    finally:
        _yaml_path.reset(token)


def _safe_url(value: object) -> str:
    """A database URL fit for an error message: the password masked, or all of it if unparseable."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return "<hidden>" if "@" in text else text


def _problem(error: Any) -> ConfigProblem:
    key = ".".join(str(part) for part in error["loc"]) or "settings"
    value = error.get("input")
    if key == "database_url":
        value = _safe_url(value)
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigProblem(key, value, message)
