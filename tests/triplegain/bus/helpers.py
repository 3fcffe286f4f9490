"""Bus test helpers: a payload, a hand-moved clock, a runner whose timeout turns a deadlock into a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")
DEADLOCK_GUARD_SECONDS = 20


class Tick(BaseModel):
    """A test payload."""

    model_config = ConfigDict(frozen=True)

    n: int
    symbol: str = "BTC/USDT"
    publisher: int = 0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def run(coro: Coroutine[Any, Any, T], timeout: float = DEADLOCK_GUARD_SECONDS) -> T:
    """Run `coro` on a fresh loop; a hang fails with TimeoutError instead of hanging CI."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
