"""When deliveries fail: the bounded dead-letter queue, retry outcomes, and suspended subscriptions."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.bus.messages import Message


class DeadLetter(BaseModel):
    """A delivery that failed: what, to whom, why, how often."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Message
    subscription_id: int
    subscriber: str
    error: str = Field(description="Exception type and message of the last attempt")
    attempts: int = Field(ge=1)
    first_failed_at: AwareDatetime
    last_failed_at: AwareDatetime
    exhausted: bool = Field(False, description="No retry left under the policy")


class DeadLetterQueue:
    """Bounded, oldest dropped first (and counted); inspect with `entries()`."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[DeadLetter] = deque()
        self._capacity = capacity
        self.dropped = 0
        self.total = 0

    def add(self, letter: DeadLetter) -> None:
        """Keep `letter`; drop the oldest when full."""
        if len(self._entries) >= self._capacity:
            self._entries.popleft()
            self.dropped += 1
        self._entries.append(letter)
        self.total += 1

    def entries(self) -> list[DeadLetter]:
        """Every dead letter kept, oldest first."""
        return list(self._entries)

    def take_retryable(self) -> list[DeadLetter]:
        """Remove and return the letters that still have attempts left."""
        retry = [d for d in self._entries if not d.exhausted]
        self._entries = deque(d for d in self._entries if d.exhausted)
        return retry

    def __len__(self) -> int:
        return len(self._entries)


class SubscriptionSuspended(BaseModel):
    """System event: a subscription failed too often in a row and receives nothing until resumed."""

    model_config = ConfigDict(frozen=True)

    subscription_id: int
    subscriber: str
    pattern: str
    consecutive_failures: int
    last_error: str


class RetryOutcome(BaseModel):
    """What a dead-letter retry did."""

    model_config = ConfigDict(frozen=True)

    delivered: int
    failed_again: int
    exhausted: int
    skipped: int


def failed(message: Message, sub_id: int, subscriber: str, error: BaseException, now: datetime) -> DeadLetter:
    """A first-attempt dead letter."""
    return DeadLetter(
        message=message,
        subscription_id=sub_id,
        subscriber=subscriber,
        error=f"{type(error).__name__}: {error}",
        attempts=1,
        first_failed_at=now,
        last_failed_at=now,
    )
