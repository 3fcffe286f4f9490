"""What the bus's speed rests on, asserted by structure (the timings are in benchmarks/bus.py):
queries never walk an expired history, and a fan-out to idle subscribers creates nothing per delivery."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.triplegain.bus.helpers import FakeClock, Tick, run
from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus import subscription as subscription_module
from triplegain.settings import BusSettings


class CountingNow(datetime):
    """A moment that counts how often it is compared (each comparison is a message looked at)."""

    comparisons = 0

    def __gt__(self, other: object) -> bool:
        CountingNow.comparisons += 1
        return super().__gt__(other)  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        CountingNow.comparisons += 1
        return super().__le__(other)  # type: ignore[operator]


def test_latest_on_a_long_expired_history_looks_at_one_message_not_all() -> None:
    clock = FakeClock()
    bus = MessageBus(BusSettings(history_per_topic=20_000, default_ttl_seconds=5), clock=clock)

    async def fill() -> None:
        for n in range(20_000):
            await bus.publish(bus.message(Topic.TA_SIGNALS, "t", Tick(n=n)))

    run(fill())
    later = clock.now + timedelta(seconds=60)
    clock.now = CountingNow(*later.timetuple()[:6], tzinfo=later.tzinfo)
    CountingNow.comparisons = 0

    found = bus.latest(Topic.TA_SIGNALS)
    window = bus.history(Topic.TA_SIGNALS)

    assert found is None and window == []
    assert CountingNow.comparisons <= 2  # the reference (and this bus before) compared all 20,000


def test_a_fan_out_to_idle_subscribers_creates_no_object_per_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[object] = []
    original = subscription_module.Delivery.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        created.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subscription_module.Delivery, "__init__", counting)
    bus = MessageBus()
    received: list[Message] = []

    async def handler(message: Message) -> None:
        received.append(message)

    for _ in range(100):
        bus.subscribe(Topic.TA_SIGNALS, handler)

    run(bus.publish(bus.message(Topic.TA_SIGNALS, "t", Tick(n=1))))

    assert len(received) == 100 and created == []  # before: one Delivery per subscriber and message


def test_a_message_the_bus_stamps_equals_a_validated_one() -> None:
    bus = MessageBus(clock=FakeClock())

    stamped = bus.message(Topic.TA_SIGNALS, "t", Tick(n=1))
    validated = Message(**stamped.model_dump(exclude={"payload"}), payload=stamped.payload)

    assert stamped == validated and stamped.model_dump(mode="json") == validated.model_dump(mode="json")
    assert stamped.model_fields_set == validated.model_fields_set and hash(stamped.id)
    with pytest.raises(ValueError, match="source must not be empty"):
        bus.message(Topic.TA_SIGNALS, "", Tick(n=1))
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        bus.message(Topic.TA_SIGNALS, "t", Tick(n=1), ttl_seconds=-1)
