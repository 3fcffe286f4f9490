"""The bus against the bus it replaces, on the same work, in one process.

The workload: build a message and publish it, in a loop; N no-op async handlers subscribed to its topic
(N = 1, 10, 100). "reference" is a minimal re-implementation of the original system's publish algorithm
(reference spec 2.5, after its deadlock fix): validate, append to history under an asyncio.Lock and copy
the subscriber list, release, await each handler in turn, count each delivery under the lock; its messages
are dataclasses with a uuid4 id and a UTC timestamp. Ours keeps every guarantee the reference lacked
(priorities, TTL, per-topic history, dead letters, backpressure, suspension, latency stats).

Prints messages per second for both (best of --repeat runs, the two alternating) and the ratio.
Targets (issue 12): at least 1x with 1 subscriber and 2x with 100.

Usage: python benchmarks/bus.py [--messages N] [--repeat K]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from triplegain.bus import Message, MessageBus, Topic

SUBSCRIBERS = (1, 10, 100)


class Tick(BaseModel):
    """The payload: a counter."""

    n: int


@dataclass
class ReferenceMessage:
    """The reference's message (spec 2.3)."""

    topic: Topic
    source: str
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    priority: int = 2
    correlation_id: str | None = None
    ttl_seconds: int = 300


class ReferenceBus:
    """The reference's publish algorithm (spec 2.5, two-phase, after the deadlock fix)."""

    def __init__(self, max_history: int = 1000) -> None:
        self._lock = asyncio.Lock()
        self._subscribers: dict[Topic, list[Callable[[ReferenceMessage], Awaitable[None]]]] = {}
        self._history: list[ReferenceMessage] = []
        self._max_history = max_history
        self.total_published = self.total_delivered = self.delivery_errors = 0

    def subscribe(self, topic: Topic, handler: Callable[[ReferenceMessage], Awaitable[None]]) -> None:
        """Add a handler to a topic."""
        self._subscribers.setdefault(topic, []).append(handler)

    async def publish(self, message: ReferenceMessage) -> int:
        """Phase 1 under the lock, phase 2 outside it; every handler awaited in turn."""
        if not message.topic or not message.source or message.ttl_seconds <= 0:
            raise ValueError("invalid message")
        async with self._lock:
            self._history.append(message)
            self.total_published += 1
            if len(self._history) > self._max_history:
                self._history = self._history[-self._max_history :]
            handlers = list(self._subscribers.get(message.topic, []))
        delivered = 0
        for handler in handlers:
            try:
                await handler(message)
                delivered += 1
                async with self._lock:
                    self.total_delivered += 1
            except Exception:
                async with self._lock:
                    self.delivery_errors += 1
        return delivered


async def _noop(message: object) -> None:
    return None


async def reference_rate(subscribers: int, count: int) -> float:
    bus = ReferenceBus()
    for _ in range(subscribers):
        bus.subscribe(Topic.TRADING_SIGNALS, _noop)
    start = time.perf_counter()
    for i in range(count):
        await bus.publish(ReferenceMessage(topic=Topic.TRADING_SIGNALS, source="bench", payload={"n": i}))
    elapsed = time.perf_counter() - start
    if bus.total_delivered != subscribers * count:
        raise RuntimeError("reference run lost deliveries")
    return count / elapsed


async def bus_rate(subscribers: int, count: int) -> float:
    bus = MessageBus()
    for _ in range(subscribers):
        bus.subscribe(Topic.TRADING_SIGNALS, _noop)
    start = time.perf_counter()
    for i in range(count):
        await bus.publish(bus.message(Topic.TRADING_SIGNALS, "bench", Tick(n=i)))
    elapsed = time.perf_counter() - start
    stats = bus.stats()
    if stats.delivered != subscribers * count or stats.errors:
        raise RuntimeError(f"benchmark run lost deliveries: {stats}")
    return count / elapsed


async def main(messages: int, repeat: int) -> None:
    print(f"{messages:,} deliveries per run (messages = deliveries / subscribers), best of {repeat} runs")
    print(f"{'subscribers':>11} {'reference msg/s':>16} {'bus msg/s':>12} {'ratio':>6}")
    for subscribers in SUBSCRIBERS:
        count = max(1_000, messages // subscribers)
        reference, ours = 0.0, 0.0
        for _ in range(repeat):
            reference = max(reference, await reference_rate(subscribers, count))
            ours = max(ours, await bus_rate(subscribers, count))
        print(f"{subscribers:>11} {reference:>16,.0f} {ours:>12,.0f} {ours / reference:>6.2f}")


def _message_type_check() -> None:
    """The bus's messages are the typed, immutable kind (a guard that the workload stays comparable)."""
    assert issubclass(Message, BaseModel)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="deliveries per run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _message_type_check()
    asyncio.run(main(args.messages, args.repeat))
