"""Every request that leaves the process becomes a record, however it ends.

`LLMGateway.ask` opens an `AttemptLog` for each provider it asks and makes it current (a context
variable, so it reaches the request whether the call runs inline or as a Prefect task with retries);
`triplegain.llm.ask` records each HTTP request there as it ends: answered (with its tokens and cost),
failed, or cut off in flight (`cancelled`, or `timeout` when a caller's time limit cut it). The log hands
each record to the gateway at once, which counts it against the budget and the provider's breaker, so a
provider failing through retries opens its breaker, and a request is not sent while it is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from triplegain.errors import LLMError, LLMOutputInvalid, LLMRejected, LLMUnavailable
from triplegain.llm.models import LLMCall, Outcome, ProviderConfig, Usage


@dataclass
class Cutoff:
    """Why a request cut off in flight was cut (set to "timeout" by a caller whose time limit ran out), and
    how many records the asks started under it made."""

    outcome: Outcome = "cancelled"
    made: int = 0


@dataclass
class AttemptLog:
    """The requests one ask sends to one provider; `sink` receives each record as it is made."""

    agent: str
    config: ProviderConfig
    cycle_id: str | None
    clock: Callable[[], datetime]
    sink: Callable[[LLMCall], None]
    gate: Callable[[], bool] = lambda: True
    cutoff: Cutoff = field(default_factory=Cutoff)
    made: int = 0

    def record(
        self, started: datetime, outcome: Outcome, usage: Usage | None = None, error: str | None = None
    ) -> None:
        """Hand over the record of one request (or of one that was not sent: circuit open)."""
        usage = usage or Usage(provider=self.config.name, model=self.config.model)
        self.made += 1
        self.cutoff.made += 1
        self.sink(
            LLMCall(
                cycle_id=self.cycle_id,
                agent=self.agent,
                provider=self.config.name,
                model=self.config.model,
                started_at=started,
                latency_ms=usage.latency_ms,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                cost_usd=usage.cost_usd,
                outcome=outcome,
                error=error,
            )
        )


_current: ContextVar[AttemptLog | None] = ContextVar("triplegain_llm_attempts", default=None)
_cutoff: ContextVar[Cutoff | None] = ContextVar("triplegain_llm_cutoff", default=None)
V = TypeVar("V")


@contextmanager
def _bound(var: ContextVar[V | None], value: V) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def logging_attempts(log: AttemptLog) -> AbstractContextManager[None]:
    """Make `log` the one requests made in this context are recorded in."""
    return _bound(_current, log)


def cutting(cutoff: Cutoff) -> AbstractContextManager[None]:
    """Asks started in this context (tasks created here copy it) record their cut-offs per `cutoff`."""
    return _bound(_cutoff, cutoff)


def current_cutoff() -> Cutoff | None:
    """The cutoff of the asks started here, if a caller set one."""
    return _cutoff.get()


def current_log() -> AttemptLog | None:
    """The log requests are recorded in here, if any (none: a call made outside a gateway)."""
    return _current.get()


@dataclass
class Sent:
    """One request on its way: when it left (by the log's clock) and how long it has taken."""

    started: datetime | None
    _start: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        """Milliseconds since it was sent."""
        return (time.perf_counter() - self._start) * 1000


@contextmanager
def request(config: ProviderConfig) -> Iterator[Sent]:
    """Around one request: refused before sending when the provider's breaker has opened meanwhile;
    recorded when it fails or is cut off in flight (an answer is recorded by `record_answer`)."""
    log = current_log()
    if log is not None and not log.gate():
        log.record(log.clock(), "circuit_open", error="circuit breaker opened during retries: not sent")
        error = LLMUnavailable(config.name, config.model, "circuit breaker open: not sent")
        error.retryable = False
        raise error
    sent = Sent(log.clock() if log is not None else None)
    try:
        yield sent
    except asyncio.CancelledError:
        if log is not None and sent.started is not None:
            log.record(
                sent.started, log.cutoff.outcome, _timing(config, sent.elapsed_ms()), "cut off in flight"
            )
        raise
    except LLMError as e:
        if log is not None and sent.started is not None:
            log.record(sent.started, outcome_of(e), _timing(config, sent.elapsed_ms()), str(e))
        raise


def record_answer(sent: Sent, outcome: Outcome, usage: Usage) -> None:
    """Record a request that was answered: ok, repaired, or reasked / invalid when the answer did not fit."""
    log = current_log()
    if log is not None and sent.started is not None:
        log.record(
            sent.started, outcome, usage, None if outcome in ("ok", "repaired") else "answer did not fit"
        )


def outcome_of(error: LLMError) -> Outcome:
    """The record's outcome for a failed request."""
    if isinstance(error, LLMOutputInvalid):
        return "invalid"
    if isinstance(error, LLMRejected):
        return "rejected"
    if isinstance(error, LLMUnavailable) and error.timed_out:
        return "timeout"
    return "unavailable"


def _timing(config: ProviderConfig, latency_ms: float) -> Usage:
    return Usage(provider=config.name, model=config.model, latency_ms=latency_ms)
