"""Settings of the paper broker and the target allocation."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator

from triplegain.settings.section import SECTION, Count, Percent, PositivePercent, Usd


class BrokerSettings(BaseModel):
    """The paper broker (reference spec 4.7)."""

    model_config = SECTION

    initial_balances: dict[str, Usd] = Field(default_factory=lambda: {"USDT": Decimal(10_000)})
    fee_pct: Percent = Field(Decimal("0.26"), ge=0, le=10)
    max_slippage_pct: Percent = Field(Decimal("0.1"), ge=0, le=10)
    min_slippage_factor: Decimal = Field(Decimal("0.5"), ge=0, le=1)
    min_notional_usd: Usd = Decimal("10")
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

    model_config = SECTION

    target_pct: dict[str, Decimal] = Field(
        default_factory=lambda: {"BTC": Decimal("33.33"), "XRP": Decimal("33.33"), "USDT": Decimal("33.34")}
    )
    drift_threshold_pct: PositivePercent = Field(
        Decimal("10"),
        description="Rebalance when an asset is this many percentage points off its target (the reference "
        "used 5; 10 was chosen walk-forward on the shared history: a quarter fewer trades, higher Sharpe)",
    )
    min_trade_usd: Usd = Decimal("10")
    min_interval_hours: int = Field(
        24, ge=0, le=24 * 365, description="Rebalance at most this often unless forced"
    )
    hodl: dict[str, Decimal] = Field(
        default_factory=dict, description="Asset -> amount never sold nor counted by rebalancing (hodl bags)"
    )
    dca_threshold_usd: Usd = Field(Decimal("500"), description="Rebalances this large split up")
    dca_batches: Count = Field(6, ge=1, le=100)
    dca_interval_hours: float = Field(4, gt=0, le=24 * 30)
    target_volatility_pct: Decimal | None = Field(
        Decimal(50),
        gt=0,
        le=1000,
        description="An asset whose annualised volatility exceeds this is held at target x this / its "
        "volatility (the rest in the quote currency); None holds every asset at its target",
    )
    volatility_hours: int = Field(
        720, ge=24, le=24 * 365, description="Hourly returns the realised volatility is measured over"
    )

    @field_validator("target_pct")
    @classmethod
    def _sums_to_100(cls, targets: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(v < 0 for v in targets.values()):
            raise ValueError("targets must not be negative")
        total = sum(targets.values(), Decimal(0))
        if abs(total - 100) > Decimal("0.1"):
            raise ValueError(f"targets must sum to 100 (+/- 0.1), they sum to {total}")
        return targets


class HodlSettings(BaseModel):
    """Hodl bags (reference spec 4.5, hodl.yaml): a share of every winning trade's profit, never sold."""

    model_config = SECTION

    enabled: bool = True
    allocation_pct: Percent = Field(Decimal(10), description="Share of a winning trade's realized profit")
    split: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal("33.34"), "XRP": Decimal("33.33"), "BTC": Decimal("33.33")}
    )
    min_accumulation_usd: dict[str, Usd] = Field(
        default_factory=lambda: {"USDT": Decimal(1), "XRP": Decimal(25), "BTC": Decimal(15)},
        description="A bag's pending amount is bought (USDT: held) once it reaches this",
    )
    max_single_accumulation_usd: Usd = Field(Decimal(1000), description="At most this from one trade")
    daily_limit_usd: Usd = Field(Decimal(5000), description="At most this put aside in a UTC day")
    min_profit_usd: Usd = Field(Decimal(1), description="Smaller profits put nothing aside")

    @field_validator("split")
    @classmethod
    def _split_sums_to_100(cls, split: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(v < 0 for v in split.values()):
            raise ValueError("split shares must not be negative")
        total = sum(split.values(), Decimal(0))
        if abs(total - 100) > Decimal("0.1"):
            raise ValueError(f"split must sum to 100 (+/- 0.1), it sums to {total}")
        return split
