"""The typed report of one trading cycle: what every symbol did, then the portfolio."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.models.analysis import RegimeAssessment, SentimentReport, TechnicalReport
from triplegain.models.conflicts import Resolution
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import CycleStatus, DegradationLevel
from triplegain.models.trading import Fill, Order, Portfolio, Position, RiskVerdict

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Execution(BaseModel):
    """An order the cycle sent to the broker and, when it filled, its fill."""

    model_config = _FROZEN

    order: Order
    fill: Fill | None = None
    opened_position: Position | None = None
    closed_positions: list[Position] = Field(default_factory=list, description="Positions this order closed")
    reduced_positions: list[Position] = Field(
        default_factory=list, description="Positions this order sold part of, as they remain open"
    )


class SymbolOutcome(BaseModel):
    """Everything the cycle decided for one symbol, in pipeline order."""

    model_config = _FROZEN

    symbol: str
    price: Decimal | None = None
    last_candle_at: AwareDatetime | None = None
    missing_candles: int = 0
    technical: TechnicalReport | None = None
    regime: RegimeAssessment | None = None
    signal: TradingSignal | None = None
    sentiment: SentimentReport | None = Field(None, description="The still-valid sentiment the cycle used")
    resolution: Resolution | None = Field(None, description="How the symbol's conflicts were resolved")
    verdict: RiskVerdict | None = None
    exits: list[Execution] = Field(default_factory=list, description="Stop-loss / take-profit closes")
    execution: Execution | None = None
    allocation_trades: list[Execution] = Field(
        default_factory=list,
        description="The allocation's spot trades in this symbol this run: DCA, ceiling sells, hodl buys",
    )
    error: str | None = Field(None, description="Why the symbol was skipped this cycle")

    def executions(self) -> list[Execution]:
        """Every order of the run in this symbol: exits, the signal's trade, the allocation's trades."""
        return [*self.exits, *([self.execution] if self.execution else []), *self.allocation_trades]


class CycleReport(BaseModel):
    """The typed result of one trading cycle, as a notebook inspects it and the CLI prints it."""

    model_config = _FROZEN

    cycle_id: str
    timestamp: AwareDatetime = Field(description="The cycle's as-of time")
    started_at: AwareDatetime
    finished_at: AwareDatetime
    status: CycleStatus
    mode: str = "paper"
    decided_by: str
    symbols: list[SymbolOutcome]
    portfolio: Portfolio
    starting_equity: Decimal
    notes: list[str] = Field(
        default_factory=list,
        description="What happened, in words: breakers, state changes, skipped symbols, notices",
        validation_alias=AliasChoices("notes", "events"),  # reports stored before the rename said events
    )
    messages: int = Field(0, ge=0, description="Bus messages the cycle published (all persisted)")
    dead_letters: int = Field(0, ge=0, description="Deliveries still failing at the end of the cycle")
    llm_cost_usd: Decimal = Field(Decimal(0), ge=0, description="What the cycle's LLM calls cost")
    replayed: bool = Field(False, description="True when this cycle had already run and was read back")
    degradation: DegradationLevel = Field(DegradationLevel.NORMAL, description="Level the cycle ended at")
    hodl_bags: dict[str, Decimal] = Field(default_factory=dict, description="What each hodl bag holds after")
    hodl_pending_usd: dict[str, Decimal] = Field(
        default_factory=dict, description="Profit put aside for each bag, not yet bought"
    )

    def outcome(self, symbol: str) -> SymbolOutcome:
        """The outcome for `symbol` (KeyError if the cycle did not cover it)."""
        for outcome in self.symbols:
            if outcome.symbol == symbol:
                return outcome
        raise KeyError(symbol)
