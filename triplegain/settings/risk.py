"""Risk settings: engine limits, circuit breakers, degradation and the market watch."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from triplegain.models.enums import EntryStrictness
from triplegain.settings.section import SECTION, Count, Leverage, Minutes, Percent, PositivePercent, Share


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


class LossStreakStep(BaseModel):
    """Restrictions after a streak of losing trades (reference spec 4.6: 3 and 5 losses)."""

    model_config = SECTION

    confidence_add: Share = Field(description="Added to the minimum confidence")
    cooldown_minutes: Minutes = Field(description="Cooldown after the losing trade that reached the step")
    max_leverage: Leverage
    size_reduction_pct: Percent = Field(Decimal(0), ge=0, le=100)


class RiskSettings(BaseModel):
    """Risk-engine limits, circuit breakers and cooldowns (reference spec 4.6 and 5.3)."""

    model_config = SECTION

    stop_loss_required: bool = True
    min_stop_pct: Percent = Decimal("0.5")
    max_stop_pct: PositivePercent = Field(Decimal("5.0"))
    min_risk_reward: Decimal = Field(Decimal("1.5"), ge=0, le=100)
    regime_min_confidence: dict[str, Share] = Field(default_factory=_default_regime_confidence)
    default_min_confidence: float = Field(0.60, ge=0, le=1)
    loss_streak_steps: dict[Annotated[int, Field(ge=1, le=1000)], LossStreakStep] = Field(
        default_factory=lambda: {
            3: LossStreakStep(confidence_add=0.10, cooldown_minutes=30, max_leverage=2),
            5: LossStreakStep(
                confidence_add=0.20, cooldown_minutes=60, max_leverage=1, size_reduction_pct=Decimal(50)
            ),
        },
        description="From this many consecutive losses on, the step's restrictions apply (highest step wins)",
    )
    strictness_adjustment: dict[EntryStrictness, Annotated[float, Field(ge=-1, le=1)]] = Field(
        default_factory=lambda: {
            EntryStrictness.RELAXED: -0.05,
            EntryStrictness.NORMAL: 0.0,
            EntryStrictness.STRICT: 0.05,
            EntryStrictness.VERY_STRICT: 0.10,
        }
    )
    max_position_pct: PositivePercent = Field(Decimal("20"))
    max_risk_per_trade_pct: PositivePercent = Field(Decimal("2"))
    volatility_spike_atr_ratio: float = Field(3.0, gt=1, le=100)
    volatility_spike_size_reduction_pct: Percent = Field(Decimal("50"), ge=0, le=100)
    max_leverage: Leverage = 5
    regime_max_leverage: dict[str, Leverage] = Field(default_factory=_default_regime_leverage)
    default_regime_leverage: Leverage = 2
    drawdown_leverage_limits: dict[Percent, Leverage] = Field(
        default_factory=lambda: {Decimal(15): 1, Decimal(10): 2, Decimal(5): 3},
        description="Drawdown percent at or above the key caps leverage at the value",
    )
    max_positions_per_symbol: Count = Field(2, ge=1)
    max_open_positions: Count = Field(5, ge=1)
    max_total_exposure_pct: PositivePercent = Field(Decimal("80"))
    max_correlated_exposure_pct: PositivePercent = Field(Decimal("40"))
    correlation_threshold: float = Field(0.5, ge=0, le=1)
    correlations: dict[str, Annotated[float, Field(ge=-1, le=1)]] = Field(
        default_factory=_default_correlations
    )
    allow_short: bool = Field(
        False, description="The paper account is spot: a SELL without a long is refused"
    )
    daily_loss_pct: PositivePercent = Field(Decimal("5"))
    weekly_loss_pct: PositivePercent = Field(Decimal("10"))
    max_drawdown_pct: PositivePercent = Field(
        Decimal("20"),
        description="The whole account's drawdown bound: positions are closed and the allocation's crypto "
        "sold when equity is this far below its peak; the coordinator halts",
    )
    derisk_from_pct: Percent | None = Field(
        None,
        description="From this drawdown on, the allocation's crypto ceiling and new positions' size shrink "
        "linearly, to zero at max_drawdown_pct; None: half of max_drawdown_pct (10% of 20%)",
    )
    post_trade_cooldown_minutes: Minutes = 5
    post_loss_cooldown_minutes: Minutes = 10
    volatility_spike_cooldown_minutes: Minutes = 15
    weekly_loss_reduce_pct: Percent = Field(
        Decimal("50"), gt=0, le=100, description="Share of every position sold when the weekly breaker trips"
    )
    execution_error_limit: Count = Field(
        3, ge=1, description="Consecutive order errors that start a cooldown"
    )
    execution_error_cooldown_minutes: Minutes = Field(15, description="No new entry for this long after")

    @property
    def derisk_start_pct(self) -> Decimal:
        """The drawdown from which exposure shrinks (`derisk_from_pct`, or half the limit)."""
        return self.derisk_from_pct if self.derisk_from_pct is not None else self.max_drawdown_pct / 2

    def loss_step(self, consecutive_losses: int) -> LossStreakStep | None:
        """The restrictions in force after `consecutive_losses` losses in a row, if any."""
        reached = [n for n in self.loss_streak_steps if consecutive_losses >= n]
        return self.loss_streak_steps[max(reached)] if reached else None

    @model_validator(mode="after")
    def _stop_bounds(self) -> RiskSettings:
        if self.min_stop_pct >= self.max_stop_pct:
            raise ValueError("min_stop_pct must be below max_stop_pct")
        if self.derisk_from_pct is not None and self.derisk_from_pct >= self.max_drawdown_pct:
            raise ValueError("derisk_from_pct must be below max_drawdown_pct")
        return self


class DegradationSettings(BaseModel):
    """Graceful degradation (reference spec 3.17, with its section-10 fixes).

    Consecutive LLM and market-data failures add up; every `failures_per_level` of them is one level:
    NORMAL, REDUCED (no sentiment), LIMITED (only regime conflicts go to a model), EMERGENCY (no model at
    all, deterministic agents only, no new position). `recovery_successes` successes in a row take one
    failure off (hysteresis: a 50% failure rate cannot flap between levels).
    """

    model_config = SECTION

    failures_per_level: Count = Field(3, ge=1)
    recovery_successes: Count = Field(3, ge=1)


class WatchSettings(BaseModel):
    """The market watch (every 5 minutes): exits, trailing stops, breakers, snapshots (spec 4.7)."""

    model_config = SECTION

    trailing_stop: bool = Field(False, description="Trail stops behind the best price since entry")
    trailing_activation_pct: PositivePercent = Field(
        Decimal("1.0"), description="Profit that starts trailing"
    )
    trailing_distance_pct: Percent = Field(
        Decimal("1.5"), gt=0, le=50, description="Distance behind the high"
    )
    crashed_after_minutes: Minutes = Field(
        60, ge=1, description="A run still marked running after this long is reported as crashed"
    )
