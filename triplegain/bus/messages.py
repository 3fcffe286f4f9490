"""Bus vocabulary: the ten topics and four priorities of the reference, and the immutable message."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from uuid import uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny


class Topic(StrEnum):
    """What a message is about (reference spec 2.1)."""

    MARKET_DATA = "market_data"
    TA_SIGNALS = "ta_signals"
    REGIME_UPDATES = "regime_updates"
    SENTIMENT_UPDATES = "sentiment_updates"
    TRADING_SIGNALS = "trading_signals"
    RISK_ALERTS = "risk_alerts"
    EXECUTION_EVENTS = "execution_events"
    PORTFOLIO_UPDATES = "portfolio_updates"
    SYSTEM_EVENTS = "system_events"
    COORDINATOR_COMMANDS = "coordinator_commands"


class Priority(IntEnum):
    """Delivery priority: among pending messages, higher goes first (reference spec 2.2)."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


class Message(BaseModel):
    """One immutable message. Build it with `MessageBus.message(...)`, which fills ids, clock and TTL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid4().hex)
    timestamp: AwareDatetime
    topic: Topic
    source: str = Field(min_length=1, description="The publishing agent, e.g. 'coordinator'")
    payload: SerializeAsAny[BaseModel] = Field(description="A typed event, e.g. TradeRejected")
    priority: Priority = Priority.NORMAL
    correlation_id: str | None = Field(None, description="The cycle this message belongs to")
    causation_id: str | None = Field(None, description="The message whose handling published this one")
    ttl_seconds: float = Field(gt=0)

    @property
    def payload_type(self) -> str:
        """The payload's class name, e.g. 'TradeRejected'."""
        return type(self.payload).__name__

    @property
    def deadline(self) -> datetime:
        """The moment the message expires."""
        return self.timestamp + timedelta(seconds=self.ttl_seconds)

    def expired(self, now: datetime) -> bool:
        """True once the message is older than its TTL."""
        return now > self.deadline
