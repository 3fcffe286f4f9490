"""Closed sets of values shared by the domain models (string values as in the reference spec)."""

from __future__ import annotations

from enum import StrEnum


class Bias(StrEnum):
    """Directional bias of the technical-analysis agent."""

    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class TrendDirection(StrEnum):
    """Direction of the prevailing trend."""

    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


class Regime(StrEnum):
    """The seven market regimes of the regime-detection agent."""

    TRENDING_BULL = "trending_bull"
    TRENDING_BEAR = "trending_bear"
    RANGING = "ranging"
    VOLATILE_BULL = "volatile_bull"
    VOLATILE_BEAR = "volatile_bear"
    CHOPPY = "choppy"
    BREAKOUT_POTENTIAL = "breakout_potential"


class EntryStrictness(StrEnum):
    """How demanding the risk engine is about entries in a regime."""

    RELAXED = "relaxed"
    NORMAL = "normal"
    STRICT = "strict"
    VERY_STRICT = "very_strict"


class SentimentBias(StrEnum):
    """Five-level bias of the sentiment agent (reference spec 4.3)."""

    VERY_BULLISH = "very_bullish"
    BULLISH = "bullish"
    NEUTRAL = "neutral"
    BEARISH = "bearish"
    VERY_BEARISH = "very_bearish"


BULLISH_SENTIMENT = frozenset({SentimentBias.BULLISH, SentimentBias.VERY_BULLISH})
BEARISH_SENTIMENT = frozenset({SentimentBias.BEARISH, SentimentBias.VERY_BEARISH})


class Action(StrEnum):
    """What a trading-decision model proposes."""

    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"
    CLOSE_LONG = "CLOSE_LONG"
    CLOSE_SHORT = "CLOSE_SHORT"


class AgreementType(StrEnum):
    """How strongly the voting models agreed."""

    UNANIMOUS = "unanimous"
    STRONG_MAJORITY = "strong_majority"
    MAJORITY = "majority"
    SPLIT = "split"
    INSUFFICIENT_QUORUM = "insufficient_quorum"
    NO_CONSENSUS = "no_consensus"


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class Intent(StrEnum):
    """Whether a proposal opens exposure, closes a position, or moves the spot allocation (no position)."""

    OPEN = "open"
    CLOSE = "close"
    REBALANCE = "rebalance"


class VerdictStatus(StrEnum):
    """Outcome of the risk engine."""

    APPROVED = "approved"
    MODIFIED = "modified"
    REJECTED = "rejected"
    HALTED = "halted"


class OrderStatus(StrEnum):
    """Lifecycle of an order (reference spec 5.4). A paper market order fills at once or is rejected; a
    live order is pending from the moment its intent is stored until the exchange answers."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    ERROR = "error"


class PositionStatus(StrEnum):
    """Lifecycle of a position."""

    OPEN = "open"
    CLOSED = "closed"


class CoordinatorState(StrEnum):
    """Coordinator state persisted across runs."""

    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"


class DegradationLevel(StrEnum):
    """How much of the system a run may use (reference spec 3.17); ordered from NORMAL to EMERGENCY."""

    NORMAL = "normal"
    REDUCED = "reduced"
    LIMITED = "limited"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """0 for NORMAL up to 3 for EMERGENCY."""
        return list(DegradationLevel).index(self)

    @property
    def uses_sentiment(self) -> bool:
        """REDUCED and worse skip the sentiment agent."""
        return self is DegradationLevel.NORMAL

    @property
    def uses_llms(self) -> bool:
        """EMERGENCY calls no model at all."""
        return self is not DegradationLevel.EMERGENCY

    @property
    def opens_positions(self) -> bool:
        """EMERGENCY only protects what is open."""
        return self is not DegradationLevel.EMERGENCY


class CycleStatus(StrEnum):
    """Outcome of one trading cycle."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    SKIPPED = "skipped"
    FAILED = "failed"
