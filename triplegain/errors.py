"""TripleGain's exception tree; each name says what the caller does about it.

    TripleGainError
    ├── ConfigError             bad configuration: stop before doing anything
    ├── MarketDataError         no usable data for a symbol: skip the symbol this cycle
    │   └── MarketDataUnavailable   transient (network, exchange down): retried
    ├── StorageError            the database failed: the cycle fails, nothing half-written
    │   ├── DatabaseUnavailable     unreachable or timed out: retried
    │   └── ConcurrentCycleError    another cycle committed first: this one is discarded
    └── CycleError              the cycle as a whole could not run (every symbol failed)

Rule outcomes (a risk rejection, an order the broker refuses) are values, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


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
