"""The way every agent reaches a model: failover along a chain, circuit breakers, cost budget, records.

`LLMGateway.ask(agent, chain, prompt, schema)` tries the chain's providers in order, skipping those whose
breaker is open; the first valid answer wins. Before each call the budget is checked: once the per-cycle
or per-day budget is spent, calls fail closed (LLMBudgetExceeded) so the caller takes its offline path,
and a BudgetExhausted event says so once. Every request that leaves the process becomes an LLMCall
record as it ends (`triplegain.llm.attempts`), retries and requests cut off in flight included, and counts
at once against the budget and the provider's breaker; so do asks refused by an open breaker or a spent
budget, which send nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from triplegain.errors import LLMBudgetExceeded, LLMError, LLMUnavailable
from triplegain.llm.ask import ask_provider
from triplegain.llm.attempts import AttemptLog, Cutoff, current_cutoff, cutting, logging_attempts, outcome_of
from triplegain.llm.breaker import BreakerPosition, ProviderBreaker, ProviderBreakers
from triplegain.llm.models import Answer, LLMCall, Outcome, Prompt, ProviderConfig, T, Usage
from triplegain.llm.replay import Recording, recording_key

Caller = Callable[[ProviderConfig, Prompt, type[T]], Awaitable[Answer[T]]]
Clock = Callable[[], datetime]


class BudgetExhausted(BaseModel):
    """Event: LLM spending hit a limit; until it resets, agents use their offline path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Literal["cycle", "day"]
    limit_usd: Decimal
    spent_usd: Decimal


class Budget:
    """Per-cycle and per-day LLM spending, checked before each call (thread-safe)."""

    def __init__(
        self,
        per_cycle: Decimal,
        per_day: Decimal,
        spent_today: Decimal = Decimal(0),
        spent_cycle: Decimal = Decimal(0),
    ) -> None:
        self.per_cycle, self.per_day = per_cycle, per_day
        self.spent_cycle, self.spent_today = spent_cycle, spent_today
        self._lock = threading.Lock()

    def exhausted(self) -> BudgetExhausted | None:
        """Which limit is reached, if any."""
        with self._lock:
            if self.spent_cycle >= self.per_cycle:
                return BudgetExhausted(scope="cycle", limit_usd=self.per_cycle, spent_usd=self.spent_cycle)
            if self.spent_today >= self.per_day:
                return BudgetExhausted(scope="day", limit_usd=self.per_day, spent_usd=self.spent_today)
            return None

    def spend(self, usd: Decimal) -> None:
        """Count a call's cost."""
        with self._lock:
            self.spent_cycle += usd
            self.spent_today += usd


@dataclass(frozen=True)
class LLMRunResult:
    """What a run's LLM use leaves to persist: call records, breaker states, budget events."""

    records: list[LLMCall] = field(default_factory=list)
    breakers: dict[str, ProviderBreaker] = field(default_factory=dict)
    events: list[BudgetExhausted] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)

    def merged(self, later: LLMRunResult) -> LLMRunResult:
        """Both runs' records, events and recordings; the later run's breaker states win."""
        return LLMRunResult(
            [*self.records, *later.records],
            {**self.breakers, **later.breakers},
            [*self.events, *later.events],
            [*self.recordings, *later.recordings],
        )


class LLMGateway:
    """Failover, breakers, budget and records for one run."""

    def __init__(
        self,
        breakers: ProviderBreakers,
        budget: Budget,
        cycle_id: str | None = None,
        clock: Clock = lambda: datetime.now(UTC),
        call: Caller[BaseModel] = ask_provider,
    ) -> None:
        self.breakers, self.budget, self.cycle_id, self.clock = breakers, budget, cycle_id, clock
        self._call = call
        self.records: list[LLMCall] = []
        self.events: list[BudgetExhausted] = []
        self.recordings: list[Recording] = []
        self._lock = threading.Lock()

    def result(self) -> LLMRunResult:
        """Records, breaker states and events so far."""
        with self._lock:
            return LLMRunResult(
                list(self.records), self.breakers.export(), list(self.events), list(self.recordings)
            )

    async def ask_each(
        self, agent: str, models: Sequence[ProviderConfig], prompt: Prompt, schema: type[T], timeout: float
    ) -> list[Answer[T] | BaseException | None]:
        """Ask every model the same question at once; per model, in order: its answer, its error, or None
        when it was not back within `timeout` (then cut off: its request in flight is recorded `timeout`)."""
        cutoffs = [Cutoff() for _ in models]
        tasks = []
        for model, cutoff in zip(models, cutoffs, strict=True):
            with cutting(cutoff):  # the task copies this context: its requests count and cut here
                tasks.append(asyncio.ensure_future(self.ask(agent, [model], prompt, schema)))
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task, cutoff in zip(tasks, cutoffs, strict=True):
            if task in pending:
                cutoff.outcome = "timeout"
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # requests in flight record their cut-off
        for model, task, cutoff in zip(models, tasks, cutoffs, strict=True):
            if task in pending and not cutoff.made:  # cut before any request left
                self._record(agent, model, self.clock(), "timeout", error=f"no answer within {timeout:g} s")
        return [(task.exception() or task.result()) if task in done else None for task in tasks]

    async def ask(
        self, agent: str, chain: Sequence[ProviderConfig], prompt: Prompt, schema: type[T]
    ) -> Answer[T]:
        """The first valid answer along `chain`; LLMBudgetExceeded, or LLMUnavailable when all failed.
        A request cut off in flight records why per the caller's `Cutoff` (`attempts.cutting`)."""
        if not chain:
            raise ValueError(f"{agent}: no LLM provider configured")
        failures: list[str] = []
        for config in chain:
            self._check_budget(agent, config)
            now = self.clock()
            if not self.breakers.admit(config.name, now):
                self._record(agent, config, now, "circuit_open", error="circuit breaker open")
                failures.append(f"{config.name}: circuit open")
                continue
            log = self._log(agent, config, current_cutoff() or Cutoff())
            try:
                with logging_attempts(log):
                    answer = await self._call(config, prompt, schema)
            except LLMError as e:
                if not log.made:  # a caller that sends no request itself (a fake, a replay)
                    log.record(now, outcome_of(e), e.usage, str(e))
                failures.append(str(e))
                continue
            if not log.made:
                log.record(now, "repaired" if answer.repaired else "ok", answer.usage)
            self._remember(config, prompt, schema, answer, now)
            return answer  # type: ignore[return-value]
        last = chain[-1]
        raise LLMUnavailable(last.name, last.model, f"{agent}: every provider failed: " + "; ".join(failures))

    def _log(self, agent: str, config: ProviderConfig, cutoff: Cutoff) -> AttemptLog:
        """An attempt log whose records count at once against the budget and the provider's breaker."""

        def gate() -> bool:
            return self.breakers.state(config.name).position is not BreakerPosition.OPEN

        return AttemptLog(agent, config, self.cycle_id, self.clock, self._absorb, gate, cutoff)

    def _absorb(self, record: LLMCall) -> None:
        """Keep a record, spend its cost, and tell the provider's breaker how the request went."""
        self.budget.spend(record.cost_usd)
        if record.outcome in _BREAKER_FAILURES:
            self.breakers.failed(record.provider, self.clock())
        elif record.outcome in ("ok", "repaired"):
            self.breakers.succeeded(record.provider)
        with self._lock:
            self.records.append(record)

    def _remember(
        self,
        config: ProviderConfig,
        prompt: Prompt,
        schema: type[BaseModel],
        answer: Answer[BaseModel],
        at: datetime,
    ) -> None:
        """Keep a valid answer for replay, keyed by model and prompt."""
        recording = Recording(
            key=recording_key(config.model, prompt, schema),
            provider=config.name,
            model=config.model,
            schema_name=schema.__name__,
            answer=answer.value.model_dump(mode="json"),
            recorded_at=at,
            cycle_id=self.cycle_id,
        )
        with self._lock:
            self.recordings.append(recording)

    def _check_budget(self, agent: str, config: ProviderConfig) -> None:
        exhausted = self.budget.exhausted()
        if exhausted is None:
            return
        with self._lock:
            if not any(e.scope == exhausted.scope for e in self.events):
                self.events.append(exhausted)
        self._record(agent, config, self.clock(), "budget_exceeded", error=f"{exhausted.scope} budget spent")
        raise LLMBudgetExceeded(
            config.name,
            config.model,
            f"{exhausted.scope} LLM budget of {exhausted.limit_usd} USD spent ({exhausted.spent_usd:.4f})",
        )

    def _record(
        self,
        agent: str,
        config: ProviderConfig,
        started: datetime,
        outcome: Outcome,
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        """A record of no request (circuit open, budget spent, cut off before sending)."""
        AttemptLog(agent, config, self.cycle_id, self.clock, self._absorb).record(
            started, outcome, usage, error
        )


_BREAKER_FAILURES = frozenset({"unavailable", "timeout", "rejected", "invalid"})
