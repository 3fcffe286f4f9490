"""Property-based tests of the ordering and priority rules."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.triplegain.bus.helpers import Tick, run
from triplegain.bus import Message, MessageBus, Priority, Topic

messages = st.lists(
    st.tuples(st.sampled_from(list(Topic)), st.sampled_from(list(Priority))), min_size=1, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(spec=messages)
def test_an_idle_subscriber_sees_exactly_publish_order(spec: list[tuple[Topic, Priority]]) -> None:
    bus = MessageBus()
    got: list[int] = []
    bus.subscribe("*", lambda m: got.append(m.payload.n))  # type: ignore[attr-defined]

    async def go() -> None:
        for n, (topic, priority) in enumerate(spec):
            await bus.publish(bus.message(topic, "p", Tick(n=n), priority))

    run(go())

    assert got == list(range(len(spec)))


@settings(max_examples=60, deadline=None)
@given(spec=messages)
def test_pending_messages_go_highest_priority_first_fifo_within(spec: list[tuple[Topic, Priority]]) -> None:
    bus = MessageBus()
    got: list[Message] = []
    gate = asyncio.Event()

    async def handler(m: Message) -> None:
        if m.payload.n == -1:  # type: ignore[attr-defined]
            await gate.wait()
            return
        got.append(m)

    bus.subscribe("*", handler)

    async def go() -> None:
        blocker = asyncio.create_task(bus.publish(bus.message(Topic.SYSTEM_EVENTS, "p", Tick(n=-1))))
        await asyncio.sleep(0)
        pending = []
        for n, (topic, priority) in enumerate(spec):
            pending.append(asyncio.create_task(bus.publish(bus.message(topic, "p", Tick(n=n), priority))))
            await asyncio.sleep(0)  # each publisher queues its message before the next one starts
        gate.set()
        await asyncio.gather(blocker, *pending)

    run(go())

    expected = sorted(range(len(spec)), key=lambda n: (-spec[n][1], n))
    assert [m.payload.n for m in got] == expected  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(
    spec=messages,
    wanted=st.lists(st.frozensets(st.sampled_from(list(Topic)), min_size=1), min_size=1, max_size=5),
)
def test_every_subscriber_gets_exactly_its_topics_in_order(
    spec: list[tuple[Topic, Priority]], wanted: list[frozenset[Topic]]
) -> None:
    bus = MessageBus()
    got: list[list[int]] = [[] for _ in wanted]
    for i, topics in enumerate(wanted):
        bus.subscribe("*", lambda m, i=i: got[i].append(m.payload.n), filter=lambda m, t=topics: m.topic in t)  # type: ignore[attr-defined,misc]

    async def go() -> None:
        for n, (topic, priority) in enumerate(spec):
            await bus.publish(bus.message(topic, "p", Tick(n=n), priority))

    run(go())

    for i, topics in enumerate(wanted):
        assert got[i] == [n for n, (topic, _) in enumerate(spec) if topic in topics]
