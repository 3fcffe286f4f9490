"""Trade proposals, risk verdicts, orders, fills, positions and the portfolio."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.models.enums import Intent, OrderStatus, PositionStatus, Side, VerdictStatus

_FROZEN = ConfigDict(frozen=True, extra="forbid")
QUOTE = "USDT"


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTC/USDT' -> ('BTC', 'USDT')."""
    base, _, quote = symbol.partition("/")
    return base, quote


class TradeProposal(BaseModel):
    """A trade the coordinator asks the risk engine to approve (reference spec 4.6)."""

    model_config = _FROZEN

    symbol: str = Field(min_length=3)
    side: Side
    intent: Intent = Intent.OPEN
    size_usd: Decimal = Field(gt=0)
    entry_price: Decimal = Field(gt=0)
    stop_loss: Decimal | None = Field(None, gt=0)
    take_profit: Decimal | None = Field(None, gt=0)
    leverage: int = Field(1, ge=1)
    confidence: float = Field(ge=0, le=1)
    regime: str = "ranging"
    position_id: str | None = Field(None, description="The position a closing proposal closes")

    @model_validator(mode="after")
    def _levels_on_the_right_side(self) -> TradeProposal:
        if self.intent is Intent.CLOSE:
            return self
        below, above = (
            (self.stop_loss, self.take_profit)
            if self.side is Side.BUY
            else (self.take_profit, self.stop_loss)
        )
        if below is not None and below >= self.entry_price:
            raise ValueError(f"{self.side} levels inverted: {below} must be below entry {self.entry_price}")
        if above is not None and above <= self.entry_price:
            raise ValueError(f"{self.side} levels inverted: {above} must be above entry {self.entry_price}")
        return self


class RiskReason(BaseModel):
    """One rule outcome: a machine code (e.g. STOP_TOO_WIDE) and a sentence for humans."""

    model_config = _FROZEN

    code: str
    message: str


class RiskVerdict(BaseModel):
    """The risk engine's answer: approved, modified (only ever smaller), rejected or halted."""

    model_config = _FROZEN

    status: VerdictStatus
    proposal: TradeProposal | None = Field(description="None when the signal could not form a proposal")
    modified_proposal: TradeProposal | None = None
    rejections: list[RiskReason] = Field(default_factory=list)
    warnings: list[RiskReason] = Field(default_factory=list)
    modifications: list[RiskReason] = Field(default_factory=list)
    risk_per_trade_pct: Decimal = Decimal(0)
    exposure_pct: Decimal = Decimal(0)

    @property
    def approved(self) -> bool:
        """True when the trade may go to the broker."""
        return self.status in (VerdictStatus.APPROVED, VerdictStatus.MODIFIED)

    @property
    def final_proposal(self) -> TradeProposal | None:
        """The proposal to execute: the modified one when the engine reduced it."""
        return self.modified_proposal or self.proposal


class Order(BaseModel):
    """A paper market order; its client id is derived from the cycle and signal (idempotency key)."""

    model_config = _FROZEN

    client_order_id: str
    cycle_id: str
    symbol: str
    side: Side
    intent: Intent
    size: Decimal = Field(ge=0, description="Base-asset quantity")
    reference_price: Decimal = Field(gt=0)
    status: OrderStatus
    reason: str | None = Field(None, description="Why the broker rejected it")
    created_at: AwareDatetime
    position_id: str | None = None


_EIGHT_PLACES = Decimal("0.00000001")  # a fee in the base asset, valued in the quote


class Fill(BaseModel):
    """The execution of an order."""

    model_config = _FROZEN

    client_order_id: str
    symbol: str
    side: Side
    price: Decimal = Field(gt=0)
    size: Decimal = Field(gt=0)
    fee: Decimal = Field(ge=0)
    fee_asset: str
    slippage_pct: Decimal = Field(ge=0)
    filled_at: AwareDatetime

    @property
    def notional(self) -> Decimal:
        """Price times size, in the quote asset."""
        return self.price * self.size

    @property
    def fee_in_base(self) -> Decimal:
        """The fee when the exchange took it from the base asset (Binance on buys, Kraken's `fcib`): what a
        buy leaves held is `size` less it. Else 0."""
        return self.fee if self.fee_asset == split_symbol(self.symbol)[0] else Decimal(0)

    @property
    def fee_in_quote(self) -> Decimal:
        """The fee valued in the quote asset: as charged when charged in it, at the fill's price when
        charged in the base asset; 0 when charged in a third asset (BNB, KFEE), which the books do not
        hold (the exchange's balances, reconciled, show it)."""
        base, quote = split_symbol(self.symbol)
        if self.fee_asset == quote:
            return self.fee
        return (self.fee * self.price).quantize(_EIGHT_PLACES) if self.fee_asset == base else Decimal(0)


class Position(BaseModel):
    """A long spot position opened by a filled buy."""

    model_config = _FROZEN

    id: str
    symbol: str
    side: str = "long"
    size: Decimal = Field(gt=0)
    entry_price: Decimal = Field(gt=0)
    leverage: int = Field(1, ge=1, le=5)
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    status: PositionStatus = PositionStatus.OPEN
    opened_at: AwareDatetime
    closed_at: AwareDatetime | None = None
    exit_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    fees_paid: Decimal = Decimal(0)
    close_reason: str | None = None
    cycle_id: str

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        """Mark-to-market profit at `price`, before exit fees."""
        return (price - self.entry_price) * self.size * self.leverage


class Portfolio(BaseModel):
    """Balances, prices and open positions of the paper account at one moment."""

    model_config = _FROZEN

    balances: dict[str, Decimal]
    prices: dict[str, Decimal] = Field(description="Latest price per symbol, in USDT")
    positions: list[Position] = Field(default_factory=list)
    as_of: AwareDatetime

    @property
    def equity(self) -> Decimal:
        """Total account value in USDT (assets without a price count as zero)."""
        total = self.balances.get(QUOTE, Decimal(0))
        for asset, amount in self.balances.items():
            if asset != QUOTE:
                total += amount * self.prices.get(f"{asset}/{QUOTE}", Decimal(0))
        return total

    @property
    def unpriced_assets(self) -> list[str]:
        """Assets held without a price: what `equity` counts as zero."""
        return sorted(
            a
            for a, amount in self.balances.items()
            if a != QUOTE and amount and f"{a}/{QUOTE}" not in self.prices
        )

    def exposure(self, symbol: str | None = None) -> Decimal:
        """USDT value of open positions (one symbol's, or all), at current prices and leverage."""
        return sum(
            (
                p.size * self.prices.get(p.symbol, p.entry_price) * p.leverage
                for p in self.positions
                if symbol is None or p.symbol == symbol
            ),
            Decimal(0),
        )

    def open_positions(self, symbol: str) -> list[Position]:
        """Open positions on `symbol`, oldest first."""
        return [p for p in self.positions if p.symbol == symbol and p.status is PositionStatus.OPEN]
