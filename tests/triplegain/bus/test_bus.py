"""The message bus: delivery, nesting, priorities, error policies, dead letters, backpressure, TTL, stats."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.triplegain.bus.helpers import FakeClock, Tick, run
from triplegain.bus import (
    BusOverloaded,
    ErrorPolicy,
    Message,
    MessageBus,
    Priority,
    SubscriptionSuspended,
    Topic,
)
from triplegain.settings import BusSettings


def msg(
    bus: MessageBus,
    n: int = 0,
    topic: Topic = Topic.TA_SIGNALS,
    priority: Priority = Priority.NORMAL,
    **kw: object,
) -> Message:
    return bus.message(topic, "test", Tick(n=n, **kw), priority)  # type: ignore[arg-type]


def test_sync_and_async_handlers_both_receive() -> None:
    bus = MessageBus()
    received: list[int] = []

    async def later(m: Message) -> None:
        await asyncio.sleep(0)
        received.append(m.payload.n * 10)  # type: ignore[attr-defined]

    bus.subscribe(Topic.TA_SIGNALS, lambda m: received.append(m.payload.n))  # type: ignore[attr-defined]
    bus.subscribe(Topic.TA_SIGNALS, later)

    assert run(bus.publish(msg(bus, 4))) == 2
    assert received == [4, 40]


def test_deadlock_regression_handler_publishes_nested_three_deep() -> None:
    bus = MessageBus()
    received: list[tuple[str, int]] = []
    chain = [Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.TRADING_SIGNALS, Topic.RISK_ALERTS]

    def relay(topic: Topic, nxt: Topic | None) -> object:
        async def handler(m: Message) -> None:
            received.append((topic.value, m.payload.n))  # type: ignore[attr-defined]
            bus.subscribe(Topic.SYSTEM_EVENTS, lambda _: None)  # subscribing inside a handler is fine too
            if nxt is not None:
                await bus.publish(bus.message(nxt, "relay", Tick(n=m.payload.n + 1)))  # type: ignore[attr-defined]

        return handler

    for topic, nxt in zip(chain, [*chain[1:], None], strict=True):
        bus.subscribe(topic, relay(topic, nxt))  # type: ignore[arg-type]

    run(bus.publish(msg(bus, 0)), timeout=5)

    assert received == [("ta_signals", 0), ("regime_updates", 1), ("trading_signals", 2), ("risk_alerts", 3)]


def test_handler_publishing_to_its_own_topic_is_delivered_after_it_returns() -> None:
    bus = MessageBus()
    order: list[str] = []

    async def handler(m: Message) -> None:
        n = m.payload.n  # type: ignore[attr-defined]
        order.append(f"start {n}")
        if n < 3:
            await bus.publish(bus.message(Topic.TA_SIGNALS, "self", Tick(n=n + 1)))
        order.append(f"end {n}")

    bus.subscribe(Topic.TA_SIGNALS, handler)

    run(bus.publish(msg(bus, 0)), timeout=5)

    assert order == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]


def test_nested_messages_carry_correlation_and_causation() -> None:
    bus = MessageBus(correlation_id="cycle-1")
    seen: list[Message] = []

    async def first(m: Message) -> None:
        await bus.publish(bus.message(Topic.RISK_ALERTS, "risk", Tick(n=1)))

    bus.subscribe(Topic.TA_SIGNALS, first)
    bus.subscribe(Topic.RISK_ALERTS, seen.append)
    root = msg(bus)

    run(bus.publish(root))

    assert root.correlation_id == "cycle-1" and root.causation_id is None
    assert seen[0].correlation_id == "cycle-1" and seen[0].causation_id == root.id


def test_several_subscriptions_per_subscriber_and_unsubscribe_by_handle() -> None:
    bus = MessageBus()
    a: list[int] = []
    b: list[int] = []
    sub_a = bus.subscribe(Topic.TA_SIGNALS, lambda m: a.append(m.payload.n), subscriber="coord")  # type: ignore[attr-defined]
    bus.subscribe(Topic.TA_SIGNALS, lambda m: b.append(m.payload.n), subscriber="coord")  # type: ignore[attr-defined]

    run(bus.publish(msg(bus, 1)))
    assert bus.unsubscribe(sub_a) and not bus.unsubscribe(sub_a)
    run(bus.publish(msg(bus, 2)))

    assert a == [1] and b == [1, 2]


def test_patterns_and_filters() -> None:
    bus = MessageBus()
    everything: list[str] = []
    btc: list[int] = []
    bus.subscribe("*", lambda m: everything.append(m.topic.value))
    bus.subscribe(
        Topic.TA_SIGNALS, lambda m: btc.append(m.payload.n), filter=lambda m: m.payload.symbol == "BTC/USDT"
    )  # type: ignore[attr-defined]

    async def go() -> None:
        await bus.publish(msg(bus, 1))
        await bus.publish(msg(bus, 2, symbol="XRP/USDT"))
        await bus.publish(msg(bus, 3, topic=Topic.RISK_ALERTS))

    run(go())

    assert everything == ["ta_signals", "ta_signals", "risk_alerts"] and btc == [1]
    with pytest.raises(ValueError, match="matches no topic"):
        bus.subscribe("nonsense_*", lambda m: None)


def test_a_filter_that_raises_is_no_match_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    bus = MessageBus()
    other: list[int] = []
    bus.subscribe(Topic.TA_SIGNALS, lambda m: None, filter=lambda m: 1 / 0 > 0)  # type: ignore[operator]
    bus.subscribe(Topic.TA_SIGNALS, lambda m: other.append(1))

    with caplog.at_level(logging.WARNING, logger="triplegain.bus"):
        assert run(bus.publish(msg(bus))) == 1

    assert other == [1] and bus.stats().filter_errors == 1
    assert "ZeroDivisionError" in caplog.text and "ta_signals" in caplog.text


def test_pending_messages_go_by_priority_then_fifo() -> None:
    bus = MessageBus()
    received: list[str] = []
    gate = asyncio.Event()

    async def slow(m: Message) -> None:
        if m.payload.n == 0:  # type: ignore[attr-defined]
            await gate.wait()
        received.append(f"{m.priority.name}-{m.payload.n}")  # type: ignore[attr-defined]

    bus.subscribe(Topic.TA_SIGNALS, slow)

    async def go() -> None:
        first = asyncio.create_task(bus.publish(msg(bus, 0)))
        await asyncio.sleep(0)  # the first delivery is now in progress, holding the queue
        later = [
            asyncio.create_task(bus.publish(msg(bus, n, priority=p)))
            for n, p in enumerate(
                [Priority.LOW, Priority.NORMAL, Priority.URGENT, Priority.HIGH, Priority.URGENT], 1
            )
        ]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *later)

    run(go())

    assert received == ["NORMAL-0", "URGENT-3", "URGENT-5", "HIGH-4", "NORMAL-2", "LOW-1"]


def test_isolate_dead_letters_and_others_still_receive(caplog: pytest.LogCaptureFixture) -> None:
    bus = MessageBus()
    ok: list[int] = []
    bus.subscribe(Topic.EXECUTION_EVENTS, lambda m: 1 / 0, subscriber="broken")  # type: ignore[arg-type,return-value]
    bus.subscribe(Topic.EXECUTION_EVENTS, lambda m: ok.append(1))
    m = msg(bus, topic=Topic.EXECUTION_EVENTS, priority=Priority.HIGH)

    with caplog.at_level(logging.ERROR, logger="triplegain.bus"):
        run(bus.publish(m))

    assert ok == [1]
    [letter] = bus.dead_letters()
    assert letter.message == m and letter.subscriber == "broken" and letter.attempts == 1
    assert letter.error.startswith("ZeroDivisionError")
    assert m.id in caplog.text and "HIGH" in caplog.text and "execution_events" in caplog.text
    assert bus.stats().errors == 1 and bus.stats().dead_letters == 1


def test_propagate_raises_to_the_publisher_after_others_received() -> None:
    bus = MessageBus()
    ok: list[int] = []

    def risk_handler(m: Message) -> None:
        raise RuntimeError("risk engine crashed")

    bus.subscribe(Topic.TRADING_SIGNALS, risk_handler, error_policy=ErrorPolicy.PROPAGATE)
    bus.subscribe(Topic.TRADING_SIGNALS, lambda m: ok.append(1))

    with pytest.raises(RuntimeError, match="risk engine crashed"):
        run(bus.publish(msg(bus, topic=Topic.TRADING_SIGNALS)))

    assert ok == [1] and bus.dead_letters() == []


def test_propagate_reaches_a_publisher_waiting_behind_a_busy_subscription() -> None:
    bus = MessageBus()
    gate = asyncio.Event()

    async def handler(m: Message) -> None:
        if m.payload.n == 0:  # type: ignore[attr-defined]
            await gate.wait()
            return
        raise ValueError(f"bad {m.payload.n}")  # type: ignore[attr-defined]

    bus.subscribe(Topic.TRADING_SIGNALS, handler, error_policy=ErrorPolicy.PROPAGATE)

    async def go() -> None:
        first = asyncio.create_task(bus.publish(msg(bus, 0, topic=Topic.TRADING_SIGNALS)))
        await asyncio.sleep(0)
        second = asyncio.create_task(bus.publish(msg(bus, 7, topic=Topic.TRADING_SIGNALS)))
        await asyncio.sleep(0)
        gate.set()
        await first
        with pytest.raises(ValueError, match="bad 7"):
            await second

    run(go())


def test_repeated_failures_suspend_the_subscription_and_say_so() -> None:
    bus = MessageBus(BusSettings(suspend_after_failures=3))
    events: list[SubscriptionSuspended] = []
    broken = bus.subscribe(Topic.TA_SIGNALS, lambda m: 1 / 0, subscriber="flaky")  # type: ignore[arg-type,return-value]
    bus.subscribe(Topic.SYSTEM_EVENTS, lambda m: events.append(m.payload))  # type: ignore[arg-type]

    async def go(count: int) -> None:
        for n in range(count):
            await bus.publish(msg(bus, n))

    run(go(5))

    assert broken.suspended and len(bus.dead_letters()) == 3
    assert events[0].subscriber == "flaky" and events[0].consecutive_failures == 3
    assert bus.stats().suspended == 1
    bus.resume(broken)
    assert not broken.suspended and broken.consecutive_failures == 0


def test_dead_letters_are_retried_until_delivered() -> None:
    bus = MessageBus()
    attempts: list[int] = []

    def flaky(m: Message) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("db busy")

    bus.subscribe(Topic.EXECUTION_EVENTS, flaky)
    run(bus.publish(msg(bus, topic=Topic.EXECUTION_EVENTS)))

    outcome = run(bus.retry_dead_letters())

    assert outcome.delivered == 1 and bus.dead_letters() == [] and len(attempts) == 2


def test_dead_letters_exhaust_after_the_policy_attempts() -> None:
    bus = MessageBus(BusSettings(dead_letter_attempts=3))
    bus.subscribe(Topic.EXECUTION_EVENTS, lambda m: 1 / 0)  # type: ignore[arg-type,return-value]
    run(bus.publish(msg(bus, topic=Topic.EXECUTION_EVENTS)))

    first = run(bus.retry_dead_letters())
    second = run(bus.retry_dead_letters())
    third = run(bus.retry_dead_letters())

    assert (first.failed_again, second.exhausted, third.delivered + third.failed_again) == (1, 1, 0)
    [letter] = bus.dead_letters()
    assert letter.attempts == 3 and letter.exhausted


def test_dead_letter_queue_is_bounded() -> None:
    bus = MessageBus(BusSettings(max_dead_letters=5, suspend_after_failures=100))
    bus.subscribe(Topic.TA_SIGNALS, lambda m: 1 / 0)  # type: ignore[arg-type,return-value]

    async def go() -> None:
        for n in range(12):
            await bus.publish(msg(bus, n))

    run(go())

    assert [d.message.payload.n for d in bus.dead_letters()] == [7, 8, 9, 10, 11]  # type: ignore[attr-defined]
    assert bus.stats().dead_letters_dropped == 7 and bus.stats().dead_lettered_total == 12


def backpressure_bus(overflow: str) -> tuple[MessageBus, asyncio.Event, list[int]]:
    bus = MessageBus(BusSettings(max_backlog=2, overflow=overflow))  # type: ignore[arg-type]
    gate, received = asyncio.Event(), []

    async def slow(m: Message) -> None:
        await gate.wait()
        received.append(m.payload.n)  # type: ignore[attr-defined]

    bus.subscribe(Topic.TA_SIGNALS, slow)
    return bus, gate, received


def test_full_backlog_raises_bus_overloaded_when_configured() -> None:
    async def go() -> None:
        bus, gate, received = backpressure_bus("raise")
        tasks = [asyncio.create_task(bus.publish(msg(bus, n))) for n in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(BusOverloaded, match=r"max_backlog 2.*overflow is 'raise'"):
            await bus.publish(msg(bus, 99))
        gate.set()
        await asyncio.gather(*tasks)
        assert received == [0, 1, 2] and bus.stats().backlog_high_water <= 3

    run(go())


def test_full_backlog_makes_the_publisher_wait_when_configured() -> None:
    async def go() -> None:
        bus, gate, received = backpressure_bus("wait")
        tasks = [asyncio.create_task(bus.publish(msg(bus, n))) for n in range(10)]
        await asyncio.sleep(0.01)
        assert bus.stats().backlog <= 2 and not any(t.done() for t in tasks)
        gate.set()
        await asyncio.gather(*tasks)
        assert received == list(range(10)) and bus.stats().backlog_high_water == 2

    run(go())


def test_handler_never_waits_on_its_own_full_queue() -> None:
    bus = MessageBus(BusSettings(max_backlog=1, overflow="wait"))
    errors: list[str] = []

    async def handler(m: Message) -> None:
        if m.payload.n == 0:  # type: ignore[attr-defined]
            await bus.publish(msg(bus, 1))
            try:
                await bus.publish(msg(bus, 2))
            except BusOverloaded as e:
                errors.append(str(e))

    bus.subscribe(Topic.TA_SIGNALS, handler)

    run(bus.publish(msg(bus, 0)), timeout=5)

    assert len(errors) == 1 and "inside a handler never waits" in errors[0]


def test_expired_messages_are_never_returned_whether_or_not_purged() -> None:
    clock = FakeClock()
    bus = MessageBus(BusSettings(default_ttl_seconds=60), clock=clock)

    async def go() -> None:
        await bus.publish(msg(bus, 1))
        clock.advance(30)
        await bus.publish(bus.message(Topic.TA_SIGNALS, "t", Tick(n=2), ttl_seconds=10))

    run(go())
    assert bus.latest(Topic.TA_SIGNALS).payload.n == 2  # type: ignore[union-attr]

    clock.advance(11)
    assert bus.purge_expired() == 0  # the front message is alive, so nothing is purged...
    assert bus.latest(Topic.TA_SIGNALS).payload.n == 1  # type: ignore[union-attr]  # ...yet n=2 is hidden
    assert [m.payload.n for m in bus.history(Topic.TA_SIGNALS)] == [1]  # type: ignore[attr-defined]

    clock.advance(20)
    assert bus.latest(Topic.TA_SIGNALS) is None and bus.history(Topic.TA_SIGNALS) == []
    assert bus.purge_expired() == 2


def test_message_expiring_before_delivery_is_not_delivered() -> None:
    clock = FakeClock()
    bus = MessageBus(clock=clock)
    received: list[int] = []
    bus.subscribe(Topic.TA_SIGNALS, received.append)  # type: ignore[arg-type]
    stale = bus.message(Topic.TA_SIGNALS, "t", Tick(n=1), ttl_seconds=5)
    clock.advance(6)

    run(bus.publish(stale))

    assert received == [] and bus.stats().expired_undelivered == 1


def test_latest_with_filter_and_history_window() -> None:
    clock = FakeClock()
    bus = MessageBus(clock=clock)

    async def go() -> None:
        for n, symbol in enumerate(["BTC/USDT", "XRP/USDT", "BTC/USDT", "XRP/USDT"]):
            await bus.publish(msg(bus, n, symbol=symbol))
            clock.advance(10)

    run(go())
    since = clock.now - __import__("datetime").timedelta(seconds=25)

    assert bus.latest(Topic.TA_SIGNALS, lambda m: m.payload.symbol == "BTC/USDT").payload.n == 2  # type: ignore[union-attr,attr-defined]
    assert [m.payload.n for m in bus.history(Topic.TA_SIGNALS, since=since)] == [3, 2]  # type: ignore[attr-defined]
    assert [m.payload.n for m in bus.history(Topic.TA_SIGNALS, limit=3)] == [3, 2, 1]  # type: ignore[attr-defined]
    assert bus.latest(Topic.RISK_ALERTS) is None


def test_history_is_bounded_per_topic() -> None:
    bus = MessageBus(BusSettings(history_per_topic=3))

    async def go() -> None:
        for n in range(10):
            await bus.publish(msg(bus, n))
            await bus.publish(msg(bus, n, topic=Topic.RISK_ALERTS))

    run(go())

    assert [m.payload.n for m in bus.history(Topic.TA_SIGNALS)] == [9, 8, 7]  # type: ignore[attr-defined]
    assert len(bus.history(Topic.RISK_ALERTS)) == 3


def test_stats_count_and_time_deliveries() -> None:
    bus = MessageBus()
    bus.subscribe("*", lambda m: None)
    bus.subscribe(Topic.TA_SIGNALS, lambda m: None)

    async def go() -> None:
        for n in range(50):
            await bus.publish(msg(bus, n))

    run(go())
    stats = bus.stats()

    assert (stats.published, stats.delivered, stats.errors, stats.backlog) == (50, 100, 0, 0)
    assert stats.latency_p50_us is not None and stats.latency_p99_us is not None
    assert 0 < stats.latency_p50_us <= stats.latency_p99_us


def test_message_validation() -> None:
    bus = MessageBus()

    with pytest.raises(ValueError, match="source"):
        bus.message(Topic.TA_SIGNALS, "", Tick(n=1))
    with pytest.raises(ValueError, match="ttl_seconds"):
        Message(timestamp=FakeClock()(), topic=Topic.TA_SIGNALS, source="x", payload=Tick(n=1), ttl_seconds=0)


def test_cancelled_publisher_does_not_strand_queued_messages() -> None:
    bus = MessageBus()
    received: list[int] = []
    gate = asyncio.Event()

    async def slow(m: Message) -> None:
        if m.payload.n == 0:  # type: ignore[attr-defined]
            await gate.wait()
        received.append(m.payload.n)  # type: ignore[attr-defined]

    bus.subscribe(Topic.TA_SIGNALS, slow)

    async def go() -> None:
        first = asyncio.create_task(bus.publish(msg(bus, 0)))
        await asyncio.sleep(0)
        second = asyncio.create_task(bus.publish(msg(bus, 1)))
        await asyncio.sleep(0)
        first.cancel()
        await second

    run(go())

    assert received == [1]


def test_handler_may_unsubscribe_itself_and_others_mid_stream() -> None:
    bus = MessageBus()
    once: list[int] = []
    steady: list[int] = []
    handles: dict[str, object] = {}

    def first_only(m: Message) -> None:
        once.append(m.payload.n)  # type: ignore[attr-defined]
        bus.unsubscribe(handles["once"])  # type: ignore[arg-type]

    handles["once"] = bus.subscribe(Topic.TA_SIGNALS, first_only)
    bus.subscribe(Topic.TA_SIGNALS, lambda m: steady.append(m.payload.n))  # type: ignore[attr-defined]

    async def go() -> None:
        for n in range(4):
            await bus.publish(msg(bus, n))

    run(go(), timeout=5)

    assert once == [0] and steady == [0, 1, 2, 3]


def test_pending_deliveries_to_an_unsubscribed_handler_are_dropped_not_stuck() -> None:
    bus = MessageBus()
    gate = asyncio.Event()
    got: list[int] = []

    async def slow(m: Message) -> None:
        if m.payload.n == 0:  # type: ignore[attr-defined]
            await gate.wait()
        got.append(m.payload.n)  # type: ignore[attr-defined]

    handle = bus.subscribe(Topic.TA_SIGNALS, slow)

    async def go() -> None:
        first = asyncio.create_task(bus.publish(msg(bus, 0)))
        await asyncio.sleep(0)
        queued = asyncio.create_task(bus.publish(msg(bus, 1)))
        await asyncio.sleep(0)
        bus.unsubscribe(handle)
        gate.set()
        await asyncio.gather(first, queued)

    run(go())

    assert got == [0] and bus.stats().backlog == 0
