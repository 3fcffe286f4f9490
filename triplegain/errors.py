"""TripleGain's exception tree; each name says what the caller does about it.

    TripleGainError
    ├── ConfigError             bad configuration: stop before doing anything
    ├── MarketDataError         no usable data for a symbol: skip the symbol this cycle
    │   └── MarketDataUnavailable   transient (network, exchange down): retried
    ├── StorageError            the database failed: the cycle fails, nothing half-written
    │   ├── DatabaseUnavailable     unreachable or timed out: retried
    │   └── ConcurrentCycleError    another cycle committed first: this one is discarded
    ├── CycleError              the cycle as a whole could not run (every symbol failed)
    ├── ControlError            a pause/resume/halt that is not allowed (say how to do it instead)
    └── LLMError                a language model gave no usable answer
        ├── LLMUnavailable          transient (429, 5xx, timeout, connection, circuit open): retried
        ├── LLMRejected             the provider refused the request (401, 400, ...): not retried
        ├── LLMOutputInvalid        the answer did not fit the schema after one repair re-ask
        └── LLMBudgetExceeded       the cost budget is spent: the offline path takes over

Rule outcomes (a risk rejection, an order the broker refuses) are values, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from triplegain.llm.models import Usage


class TripleGainError(Exception):
    """Root of every error TripleGain raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid setting: its dotted key, the value given and what is allowed."""

    key: str
    value: object
    allowed: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r} is invalid: {self.allowed}"


class ConfigError(TripleGainError):
    """Configuration is invalid; every problem names the key, the value and what is allowed."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(str(p) for p in problems))


class MarketDataError(TripleGainError):
    """No usable market data for a symbol at the requested time; skip the symbol."""


class MarketDataUnavailable(MarketDataError):
    """A transient failure reaching the data source; worth retrying."""


class StorageError(TripleGainError):
    """The database could not be read or written."""


class DatabaseUnavailable(StorageError):
    """The database could not be reached or did not answer in time; worth retrying."""


class ConcurrentCycleError(StorageError):
    """Another cycle changed the account since this one loaded it; this cycle's writes were discarded."""


class CycleError(TripleGainError):
    """The trading cycle could not run at all."""


class ControlError(TripleGainError):
    """A coordinator state change that is not allowed as asked; the message says what to do instead."""


class LLMError(TripleGainError):
    """A language model gave no usable answer; names the provider and model, never a key.

    `usage` is what the failed attempt still cost (tokens of a rejected answer), when known.
    """

    def __init__(self, provider: str, model: str, detail: str) -> None:
        self.provider, self.model, self.detail = provider, model, detail
        self.usage: Usage | None = None
        super().__init__(f"{provider}/{model}: {detail}")


class LLMUnavailable(LLMError):
    """Transient: rate limited, server error, timeout, connection failure, or the circuit is open."""

    def __init__(self, provider: str, model: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(provider, model, detail)
        self.retry_after = retry_after
        self.retryable = True  # False when the provider asks us to wait longer than we are willing to
        self.timed_out = False  # True when no answer came within the SDK-level timeout


class LLMRejected(LLMError):
    """The provider refused the request (bad key, bad request): retrying cannot help."""


class LLMOutputInvalid(LLMError):
    """The answer did not parse into the expected schema, even after one repair re-ask."""


class LLMBudgetExceeded(LLMError):
    """The per-cycle or per-day cost budget is spent; calls fail closed to the offline path."""


def caused_by(error: BaseException, *kinds: type[BaseException]) -> BaseException | None:
    """The first exception of `kinds` in `error`'s chain (itself, then what caused it or what was being
    handled when it was raised), or None."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, kinds):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None
