"""A subscription: who listens to what, how its errors are handled, and its own delivery queue."""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from triplegain.bus.dead_letters import DeadLetter
from triplegain.bus.messages import Message, Topic

Handler = Callable[[Message], Awaitable[None] | None]
Filter = Callable[[Message], bool]
_ids = itertools.count(1)


@functools.lru_cache(maxsize=1024)
def covers(pattern: str, topic: Topic) -> bool:
    """True when `pattern` (a topic value, or a glob such as '*' or 'risk_*') covers `topic`; remembered,
    as it is asked for every topic on each subscribe and publish."""
    return pattern == topic.value or fnmatch.fnmatchcase(topic.value, pattern)


class ErrorPolicy(StrEnum):
    """What a handler's exception does."""

    ISOLATE = "isolate"  # counted, logged, dead-lettered; the other subscribers still receive
    PROPAGATE = "propagate"  # re-raised to the publisher (risk and execution handlers)


class Delivery:
    """One message on its way to one subscription; the publisher may await it."""

    __slots__ = (
        "_future",
        "awaited",
        "deadline",
        "done",
        "error",
        "message",
        "outcome",
        "published_ns",
        "retry_of",
    )

    def __init__(
        self,
        message: Message,
        published_ns: int,
        deadline: datetime,
        awaited: bool = False,
        retry_of: DeadLetter | None = None,
    ) -> None:
        self.message = message
        self.published_ns = published_ns
        self.deadline = deadline
        self.awaited = awaited
        self.retry_of = retry_of
        self.error: BaseException | None = None
        self.outcome = "skipped"
        self.done = False
        self._future: asyncio.Future[None] | None = None

    def future(self) -> asyncio.Future[None]:
        """A future resolved once the handler has run (created only when someone waits)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self.done:
                self._future.set_result(None)
        return self._future

    def finish(self) -> None:
        """Mark the delivery handled (or skipped) and wake whoever waits for it."""
        self.done = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


@dataclass(eq=False, slots=True)
class Subscription:
    """The handle `subscribe` returns: pass it to `unsubscribe` or `resume`."""

    pattern: str
    handler: Handler
    subscriber: str
    filter: Filter | None
    policy: ErrorPolicy
    id: int = field(default_factory=lambda: next(_ids))
    consecutive_failures: int = 0
    receiving: bool = True  # active and not suspended: the one flag the delivery loop reads
    is_async: bool = False  # the handler is a coroutine function: awaited without inspecting its result
    _active: bool = True
    _suspended: bool = False
    busy: bool = False
    _pending: list[tuple[int, int, Delivery]] = field(default_factory=list)
    _space: asyncio.Event | None = None

    @property
    def active(self) -> bool:
        """False once unsubscribed."""
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = value
        self.receiving = value and not self._suspended

    @property
    def suspended(self) -> bool:
        """True while suspended after too many failures in a row (until `MessageBus.resume`)."""
        return self._suspended

    @suspended.setter
    def suspended(self, value: bool) -> None:
        self._suspended = value
        self.receiving = self._active and not value

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.handler)

    def matches_topic(self, topic: Topic) -> bool:
        """True when the subscription's pattern covers `topic`."""
        return covers(self.pattern, topic)

    @property
    def backlog(self) -> int:
        """Deliveries waiting for this subscription's handler."""
        return len(self._pending)

    def push(self, delivery: Delivery, seq: int) -> None:
        """Queue a delivery: higher priority first, then publish order."""
        heapq.heappush(self._pending, (-delivery.message.priority, seq, delivery))

    async def wait_for_room(self, limit: int) -> None:
        """Wait until fewer than `limit` deliveries are pending."""
        while len(self._pending) >= limit:
            if self._space is None:
                self._space = asyncio.Event()
            self._space.clear()
            await self._space.wait()

    def __repr__(self) -> str:
        return f"Subscription(#{self.id} {self.subscriber} on {self.pattern!r}, {self.policy})"
