"""A provider breaker per language-model provider (reference spec 4.3; the risk engine's circuit breakers are
`triplegain.risk.state.CircuitBreaker`): 3 failures open it, 300 s later it lets up to 3
trial calls through; a success closes it, a failure re-opens it. State is a value, persisted between runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class BreakerPosition(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(BaseModel):
    """When a breaker opens and how it tries again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(3, ge=1, description="Consecutive failures that open it")
    cooldown_seconds: float = Field(300, ge=0, description="Time open before trial calls")
    half_open_calls: int = Field(3, ge=1, description="Trial calls allowed while half-open")


class ProviderBreaker(BaseModel):
    """One provider's breaker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: BreakerPosition = BreakerPosition.CLOSED
    failures: int = Field(0, ge=0)
    opened_at: AwareDatetime | None = None
    trial_calls: int = Field(0, ge=0)

    def admit(self, now: datetime, policy: BreakerPolicy) -> tuple[bool, ProviderBreaker]:
        """Whether a call may go through now, and the breaker after admitting it."""
        if self.position is BreakerPosition.OPEN:
            opened = self.opened_at or now
            if now - opened < timedelta(seconds=policy.cooldown_seconds):
                return False, self
            return True, self.model_copy(update={"position": BreakerPosition.HALF_OPEN, "trial_calls": 1})
        if self.position is BreakerPosition.HALF_OPEN:
            if self.trial_calls >= policy.half_open_calls:
                return False, self
            return True, self.model_copy(update={"trial_calls": self.trial_calls + 1})
        return True, self

    def succeeded(self) -> ProviderBreaker:
        """A call worked: closed, failures forgotten."""
        return ProviderBreaker()

    def failed(self, now: datetime, policy: BreakerPolicy) -> ProviderBreaker:
        """A call failed: count it; open at the threshold, or at once when a trial call fails."""
        failures = self.failures + 1
        if self.position is BreakerPosition.HALF_OPEN or failures >= policy.failure_threshold:
            return ProviderBreaker(position=BreakerPosition.OPEN, failures=failures, opened_at=now)
        return self.model_copy(update={"failures": failures})


class ProviderBreakers:
    """Every provider's breaker for one run; thread-safe, exported for persistence."""

    def __init__(self, policy: BreakerPolicy, states: dict[str, ProviderBreaker] | None = None) -> None:
        self.policy = policy
        self._states = dict(states or {})
        self._lock = threading.Lock()

    def admit(self, provider: str, now: datetime) -> bool:
        """Reserve a call to `provider` if its breaker allows one."""
        with self._lock:
            allowed, self._states[provider] = self._states.get(provider, ProviderBreaker()).admit(
                now, self.policy
            )
            return allowed

    def succeeded(self, provider: str) -> None:
        """Record a successful call."""
        with self._lock:
            self._states[provider] = self._states.get(provider, ProviderBreaker()).succeeded()

    def failed(self, provider: str, now: datetime) -> None:
        """Record a failed call."""
        with self._lock:
            self._states[provider] = self._states.get(provider, ProviderBreaker()).failed(now, self.policy)

    def state(self, provider: str) -> ProviderBreaker:
        """The provider's breaker now."""
        with self._lock:
            return self._states.get(provider, ProviderBreaker())

    def export(self) -> dict[str, ProviderBreaker]:
        """All breakers, to persist."""
        with self._lock:
            return dict(self._states)
