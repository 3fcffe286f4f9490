"""Domain models (pydantic v2): values that flow through a trading cycle."""

from triplegain.models.analysis import (
    Indicators,
    RegimeAssessment,
    RegimeParameters,
    RegimeState,
    TechnicalReport,
)
from triplegain.models.cycle import CycleReport, Execution, SymbolOutcome
from triplegain.models.decision import ModelVote, TradingSignal
from triplegain.models.enums import (
    Action,
    AgreementType,
    Bias,
    CoordinatorState,
    CycleStatus,
    EntryStrictness,
    Intent,
    OrderStatus,
    PositionStatus,
    Regime,
    Side,
    TrendDirection,
    VerdictStatus,
)
from triplegain.models.market import Candle, CandleSeries, MarketSnapshot
from triplegain.models.trading import Fill, Order, Portfolio, Position, RiskReason, RiskVerdict, TradeProposal

__all__ = [
    "Action",
    "AgreementType",
    "Bias",
    "Candle",
    "CandleSeries",
    "CoordinatorState",
    "CycleReport",
    "CycleStatus",
    "EntryStrictness",
    "Execution",
    "Fill",
    "Indicators",
    "Intent",
    "MarketSnapshot",
    "ModelVote",
    "Order",
    "OrderStatus",
    "Portfolio",
    "Position",
    "PositionStatus",
    "Regime",
    "RegimeAssessment",
    "RegimeParameters",
    "RegimeState",
    "RiskReason",
    "RiskVerdict",
    "Side",
    "SymbolOutcome",
    "TechnicalReport",
    "TradeProposal",
    "TradingSignal",
    "TrendDirection",
    "VerdictStatus",
]
