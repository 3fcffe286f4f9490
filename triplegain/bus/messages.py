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


_FIELDS = frozenset(Message.model_fields)
_new = object.__new__
_set = object.__setattr__


def stamped(
    id: str,
    timestamp: datetime,
    topic: Topic,
    source: str,
    payload: BaseModel,
    priority: Priority,
    correlation_id: str | None,
    causation_id: str | None,
    ttl_seconds: float,
) -> Message:
    """A message the bus stamps itself, checked by hand instead of by the model's validator (half its cost,
    on the bus's hottest path); the same value a validated `Message(...)` would be (a test compares them).
    """
    if not source:
        raise ValueError("source must not be empty: name the publishing agent")
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
    if timestamp.tzinfo is None or not isinstance(payload, BaseModel):
        raise ValueError("a message needs a timezone-aware timestamp and a pydantic payload")
    message = _new(Message)
    _set(
        message,
        "__dict__",
        {
            "id": id,
            "timestamp": timestamp,
            "topic": topic if type(topic) is Topic else Topic(topic),
            "source": source,
            "payload": payload,
            "priority": priority if type(priority) is Priority else Priority(priority),
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "ttl_seconds": float(ttl_seconds),
        },
    )
    _set(message, "__pydantic_fields_set__", set(_FIELDS))
    _set(message, "__pydantic_extra__", None)
    _set(message, "__pydantic_private__", None)
    return message
