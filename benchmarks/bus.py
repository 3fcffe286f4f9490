"""Message-bus cost beside the floor of a bare asyncio.Queue hand-off, measured in the same run.

Prints, for 1, 10 and 100 subscribers: throughput (messages published per second, each delivered to every
subscriber by a no-op handler) and publish-to-handler latency p50/p99 (the bus's own latency window),
and the same figures for a producer/consumer pair on an asyncio.Queue carrying the same prebuilt messages,
with the ratios. Targets (issue 3): throughput within 3x of the bare queue with 1 subscriber; p99 under
50 microseconds.

Usage: python benchmarks/bus.py [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from pydantic import BaseModel

from triplegain.bus import Message, MessageBus, Topic
from triplegain.settings import BusSettings


class Tick(BaseModel):
    n: int


def build(bus: MessageBus, n: int) -> list[Message]:
    return [bus.message(Topic.TRADING_SIGNALS, "bench", Tick(n=i)) for i in range(n)]


async def bare_queue(messages: list[Message]) -> tuple[float, list[int]]:
    """Throughput of a bounded queue hand-off, and latency of one message at a time."""
    queue: asyncio.Queue[tuple[int, Message] | None] = asyncio.Queue(maxsize=1000)
    latencies: list[int] = []

    async def consumer() -> None:
        while (item := await queue.get()) is not None:
            latencies.append(time.perf_counter_ns() - item[0])

    task = asyncio.create_task(consumer())
    start = time.perf_counter()
    for m in messages:
        await queue.put((time.perf_counter_ns(), m))
    await queue.put(None)
    await task
    elapsed = time.perf_counter() - start
    latencies.clear()
    handed = asyncio.Event()

    async def one_at_a_time() -> None:
        while (item := await queue.get()) is not None:
            latencies.append(time.perf_counter_ns() - item[0])
            handed.set()

    task = asyncio.create_task(one_at_a_time())
    for m in messages[: min(len(messages), 20_000)]:
        handed.clear()
        queue.put_nowait((time.perf_counter_ns(), m))
        await handed.wait()
    await queue.put(None)
    await task
    return len(messages) / elapsed, latencies


async def through_bus(subscribers: int, count: int) -> tuple[float, float, float]:
    bus = MessageBus(BusSettings(latency_samples=count))
    for _ in range(subscribers):
        bus.subscribe(Topic.TRADING_SIGNALS, _noop)
    messages = build(bus, count)
    start = time.perf_counter()
    for m in messages:
        await bus.publish(m)
    elapsed = time.perf_counter() - start
    stats = bus.stats()
    if stats.delivered != subscribers * count or stats.errors:
        raise RuntimeError(f"benchmark run lost deliveries: {stats}")
    return count / elapsed, stats.latency_p50_us or 0.0, stats.latency_p99_us or 0.0


def _noop(message: Message) -> None:
    return None


def percentile_us(samples: list[int], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] / 1000


async def main(count: int) -> None:
    floor_rate, floor_latencies = await bare_queue(build(MessageBus(), count))
    floor_p50, floor_p99 = percentile_us(floor_latencies, 50), percentile_us(floor_latencies, 99)
    print(f"{count:,} messages per run")
    print(_row("", "msgs/s", "deliveries/s", "p50 us", "p99 us", "floor/rate", "p99/floor"))
    print(_row("asyncio.Queue", *_figures(floor_rate, 1, floor_p50, floor_p99, floor_rate, floor_p99)))
    for subscribers in (1, 10, 100):
        rate, p50, p99 = await through_bus(subscribers, count)
        label = f"bus, {subscribers} sub" + ("s" if subscribers > 1 else "")
        print(_row(label, *_figures(rate, subscribers, p50, p99, floor_rate, floor_p99)))
    print(
        "floor: a producer task puts prebuilt messages on a bounded asyncio.Queue, a consumer task gets them"
    )
    print("(throughput); its latency is one message at a time, put to get. Bus latency: publish() to handler")
    print("start, so with N subscribers the last one waits for the N-1 handlers before it.")


def _figures(
    rate: float, subs: int, p50: float, p99: float, floor_rate: float, floor_p99: float
) -> list[str]:
    return [
        f"{rate:,.0f}",
        f"{rate * subs:,.0f}",
        f"{p50:.1f}",
        f"{p99:.1f}",
        f"{floor_rate / rate:.2f}",
        f"{p99 / floor_p99:.2f}",
    ]


def _row(label: str, *cells: str) -> str:
    widths = (11, 13, 7, 7, 10, 9)
    return f"{label:>16} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().messages))
