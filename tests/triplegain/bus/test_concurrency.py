"""50 concurrent publishers x 1,000 messages, 10 subscribers: nothing lost, duplicated or reordered."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tests.triplegain.bus.helpers import Tick, run
from triplegain.bus import Message, MessageBus, Topic
from triplegain.settings import BusSettings

PUBLISHERS, MESSAGES, SUBSCRIBERS = 50, 1_000, 10
TOPICS = [Topic.TA_SIGNALS, Topic.TRADING_SIGNALS, Topic.EXECUTION_EVENTS]


def test_concurrent_publishers_lose_duplicate_and_reorder_nothing() -> None:
    bus = MessageBus(BusSettings(max_backlog=64, overflow="wait", history_per_topic=10))
    received: dict[int, list[Message]] = defaultdict(list)

    def subscriber(i: int) -> object:
        if i % 2 == 0:
            return received[i].append

        async def handler(m: Message) -> None:  # async, and yields now and then so deliveries interleave
            received[i].append(m)
            if m.payload.n % 97 == 0:  # type: ignore[attr-defined]
                await asyncio.sleep(0)

        return handler

    patterns = ["*", *[TOPICS[i % len(TOPICS)].value for i in range(1, SUBSCRIBERS)]]
    for i, pattern in enumerate(patterns):
        bus.subscribe(pattern, subscriber(i), subscriber=f"s{i}")  # type: ignore[arg-type]

    async def publisher(p: int) -> None:
        topic = TOPICS[p % len(TOPICS)]
        for n in range(MESSAGES):
            await bus.publish(bus.message(topic, f"p{p}", Tick(n=n, publisher=p)))
            if n % 50 == 0:
                await asyncio.sleep(0)

    async def everything() -> None:
        await asyncio.gather(*(publisher(p) for p in range(PUBLISHERS)))

    run(everything(), timeout=120)

    per_topic_publishers = {t: [p for p in range(PUBLISHERS) if TOPICS[p % len(TOPICS)] is t] for t in TOPICS}
    reference: dict[Topic, list[str]] = {}
    for i, pattern in enumerate(patterns):
        messages = received[i]
        ids = [m.id for m in messages]
        assert len(ids) == len(set(ids)), f"s{i} got duplicates"
        for topic in TOPICS:
            if pattern not in ("*", topic.value):
                continue
            mine = [m for m in messages if m.topic is topic]
            assert len(mine) == len(per_topic_publishers[topic]) * MESSAGES, f"s{i} lost {topic} messages"
            for p in per_topic_publishers[topic]:
                assert [m.payload.n for m in mine if m.payload.publisher == p] == list(range(MESSAGES))  # type: ignore[attr-defined]
            order = [m.id for m in mine]
            assert reference.setdefault(topic, order) == order, f"s{i} saw {topic} in a different order"
    stats = bus.stats()
    assert stats.published == PUBLISHERS * MESSAGES and stats.errors == 0 and stats.backlog == 0
    assert stats.backlog_high_water <= 64 * SUBSCRIBERS
