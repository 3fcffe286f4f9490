"""The in-flow message bus: priority delivery with no lock held while a handler runs.

How delivery works (one asyncio event loop):
- Each subscription has its own queue (priority, then publish order). When every matching subscription is
  idle with nothing queued (the usual case), the publisher holds them all and delivers to each in turn,
  in its own task; what others publish to them meanwhile queues behind its message. Otherwise it queues
  the message for every matching subscription, delivers to the idle ones, and waits for the busy ones.
- State changes happen between awaits, so there is no lock at all: nothing is held while a handler runs,
  and a handler may publish, subscribe or unsubscribe freely.
- A handler that publishes to a subscription it is itself being delivered for (directly or up its call
  chain) does not wait: its message is queued and delivered as soon as the current handler returns. That
  is what makes nested publishing deadlock-free; per-subscription queues keep each topic in order.
- Backpressure: a subscription holds at most `max_backlog` pending deliveries. When full the publisher
  waits, or gets `BusOverloaded` (settings); a handler that would wait on its own queue always gets it.
- Errors: `isolate` counts, logs (topic, priority, message id) and dead-letters the delivery, the other
  subscribers still receive; `propagate` re-raises to the publisher once every subscriber has had it.
  `suspend_after_failures` failures in a row suspend a subscription and a SubscriptionSuspended event says so.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from triplegain.bus.dead_letters import (
    DeadLetter,
    RetryOutcome,
    SubscriptionSuspended,
)
from triplegain.bus.dispatch import Clock, Dispatcher, current, describe, log
from triplegain.bus.history import TopicHistory
from triplegain.bus.messages import Message, Priority, Topic, stamped
from triplegain.bus.stats import BusStats
from triplegain.bus.subscription import Delivery, ErrorPolicy, Filter, Handler, Subscription, covers
from triplegain.errors import TripleGainError
from triplegain.settings import BusSettings


class BusOverloaded(TripleGainError):
    """A subscription's backlog is full and the bus is configured not to wait (or cannot)."""


utc_now: Clock = functools.partial(datetime.now, UTC)  # the default bus clock


class MessageBus(Dispatcher):
    """Publish/subscribe inside one flow run, with priorities, TTL, dead letters and backpressure."""

    def __init__(
        self, settings: BusSettings | None = None, clock: Clock = utc_now, correlation_id: str | None = None
    ) -> None:
        super().__init__(settings or BusSettings(), clock)
        self.correlation_id = correlation_id
        self._subscriptions: list[Subscription] = []
        # Per topic, its subscriptions and whether they can be used as they are (no filter, none suspended).
        self._by_topic: dict[Topic, tuple[tuple[Subscription, ...], bool]] = {}
        self._history: dict[Topic, TopicHistory] = {}
        prefix = os.urandom(
            12
        ).hex()  # 96 random bits and a counter: unique ids at a fraction of uuid4's cost
        self._ids = (f"{prefix}{n:08x}" for n in itertools.count())
        self._published = self._filter_errors = 0
        self._ttls: dict[float, timedelta] = {}

    def message(
        self,
        topic: Topic,
        source: str,
        payload: BaseModel,
        priority: Priority = Priority.NORMAL,
        ttl_seconds: float | None = None,
    ) -> Message:
        """A message stamped by the bus clock; inside a handler its causation is the message handled."""
        cause = current.get()
        return stamped(
            next(self._ids),
            self.clock(),
            topic,
            source,
            payload,
            priority,
            cause.correlation_id if cause else self.correlation_id,
            cause.id if cause else None,
            ttl_seconds or self.settings.default_ttl_seconds,
        )

    def subscribe(
        self,
        pattern: Topic | str,
        handler: Handler,
        *,
        subscriber: str = "anonymous",
        filter: Filter | None = None,
        error_policy: ErrorPolicy = ErrorPolicy.ISOLATE,
    ) -> Subscription:
        """Listen to a topic or a glob ('*', 'risk_*') with a sync or async handler; returns the handle."""
        text = pattern.value if isinstance(pattern, Topic) else pattern
        if not any(covers(text, t) for t in Topic):
            raise ValueError(f"pattern {text!r} matches no topic; topics are {[t.value for t in Topic]}")
        sub = Subscription(text, handler, subscriber, filter, error_policy)
        self._subscriptions = [*self._subscriptions, sub]
        self._by_topic = {}
        return sub

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Stop a subscription; pending deliveries to it are dropped. False if it was not active."""
        if not subscription.active:
            return False
        subscription.active = False
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]
        self._by_topic = {}
        return True

    def resume(self, subscription: Subscription) -> None:
        """Deliver to a suspended subscription again, its failure count reset."""
        subscription.suspended = False
        subscription.consecutive_failures = 0
        self._failing.discard(subscription)
        self._by_topic = {}

    async def publish(self, message: Message) -> int:
        """Deliver `message` to every matching subscription; returns how many it was meant for.

        A top-level publisher returns once every subscriber has handled it, and gets the exception of a
        `propagate` subscriber (after the others received the message). A publisher inside a handler
        never waits on another task: where the subscription is busy the message is queued, delivered in
        order once the subscription is free, and a failure there is dead-lettered instead of raised.
        A message already expired is remembered but delivered to no one.
        Raises BusOverloaded when a backlog is full and waiting is not allowed.
        """
        published_ns = time.perf_counter_ns()
        targets = self._targets(message)
        nested = current.get() is not None
        idle = True
        for sub in targets:
            if sub._pending or sub.busy:
                idle = False
                if len(sub._pending) >= self.settings.max_backlog:
                    await self._reserve_room(targets, message, nested)
                    break
        deadline = message.timestamp + self._ttl(message.ttl_seconds)
        self._remember(message, deadline)
        if not targets:
            return 0
        if self.clock() > deadline:
            self._expired += len(targets)
        elif idle:  # nothing awaited since the check: still idle; hold them all, then deliver
            for sub in targets:
                sub.busy = True
            self._latency.samples.append(time.perf_counter_ns() - published_ns)
            await self._deliver_now(targets, message, published_ns, deadline, not nested)
        else:
            await self._queue_and_deliver(targets, message, published_ns, deadline, nested)
        return len(targets)

    def latest(self, topic: Topic, filter: Filter | None = None) -> Message | None:
        """The newest unexpired message of `topic` that passes `filter` (searches that topic only)."""
        history = self._history.get(topic)
        if history is None:
            return None
        return next((m for m in history.alive(self.clock()) if filter is None or filter(m)), None)

    def history(self, topic: Topic, since: datetime | None = None, limit: int = 100) -> list[Message]:
        """Unexpired messages of `topic`, newest first, at most `limit`, none older than `since`."""
        found: list[Message] = []
        history = self._history.get(topic)
        for message in history.alive(self.clock()) if history else ():
            if len(found) >= limit or (since is not None and message.timestamp < since):
                break
            found.append(message)
        return found

    def purge_expired(self) -> int:
        """Drop expired messages from the front of each topic's history (queries never return them anyway)."""
        now = self.clock()
        return sum(history.purge(now) for history in self._history.values())

    def dead_letters(self) -> list[DeadLetter]:
        """The dead-letter queue, oldest first."""
        return self._dead.entries()

    async def retry_dead_letters(self) -> RetryOutcome:
        """Re-deliver, in order, every dead letter with attempts left to its still-active subscription."""
        if current.get() is not None:
            raise RuntimeError("retry_dead_letters cannot run inside a handler")
        outcomes: Counter[str] = Counter()
        for letter in self._dead.take_retryable():
            sub = next((s for s in self._subscriptions if s.id == letter.subscription_id), None)
            if sub is None or sub.suspended or letter.message.expired(self.clock()):
                why = "unsubscribed" if sub is None else "suspended" if sub.suspended else "expired"
                self._dead.add(
                    letter.model_copy(update={"exhausted": True, "error": f"{letter.error} ({why})"})
                )
                outcomes["skipped"] += 1
                continue
            delivery = Delivery(
                letter.message, time.perf_counter_ns(), letter.message.deadline, retry_of=letter
            )
            self._enqueue(sub, delivery)
            await (delivery.future() if sub.busy else self._drain(sub))
            outcomes[delivery.outcome] += 1
        return RetryOutcome(
            delivered=outcomes["delivered"],
            failed_again=outcomes["failed_again"],
            exhausted=outcomes["exhausted"],
            skipped=outcomes["skipped"],
        )

    def stats(self) -> BusStats:
        """Counters, backlog and latency percentiles."""
        return BusStats(
            published=self._published,
            delivered=self._delivered,
            errors=self._errors,
            filter_errors=self._filter_errors,
            expired_undelivered=self._expired,
            dead_letters=len(self._dead),
            dead_lettered_total=self._dead.total,
            dead_letters_dropped=self._dead.dropped,
            backlog=self._backlog,
            backlog_high_water=self._high_water,
            subscriptions=len(self._subscriptions),
            suspended=sum(s.suspended for s in self._subscriptions),
            latency_p50_us=self._latency.percentile_us(50),
            latency_p90_us=self._latency.percentile_us(90),
            latency_p99_us=self._latency.percentile_us(99),
        )

    def _targets(self, message: Message) -> Sequence[Subscription]:
        """The subscriptions `message` goes to: its topic's, not suspended, filters passed."""
        cached = self._by_topic.get(message.topic)
        if cached is None:
            subs = tuple(s for s in self._subscriptions if s.matches_topic(message.topic))
            plain = all(s.filter is None and not s.suspended for s in subs)
            cached = self._by_topic[message.topic] = (subs, plain)
        subs, plain = cached
        if plain:
            return subs
        return [
            sub for sub in subs if not sub.suspended and (sub.filter is None or self._passes(sub, message))
        ]

    def _suspended(self, sub: Subscription) -> None:
        self._by_topic = {}

    async def _announce(self, event: SubscriptionSuspended) -> None:
        await self.publish(self.message(Topic.SYSTEM_EVENTS, "bus", event, Priority.HIGH))

    def _ttl(self, seconds: float) -> timedelta:
        """A TTL as a timedelta, cached (messages mostly share a handful of TTLs)."""
        ttl = self._ttls.get(seconds)
        if ttl is None:
            ttl = self._ttls[seconds] = timedelta(seconds=seconds)
        return ttl

    def _remember(self, message: Message, deadline: datetime) -> None:
        history = self._history.get(message.topic)
        if history is None:
            history = self._history[message.topic] = TopicHistory(self.settings.history_per_topic)
        history.add(message, deadline)
        self._published += 1

    def _passes(self, sub: Subscription, message: Message) -> bool:
        if sub.filter is None:
            return True
        try:
            return bool(sub.filter(message))
        except Exception as e:
            self._filter_errors += 1
            log.warning(
                "filter of %r raised on %s message %s (priority %s): %s; treated as no match",
                sub,
                message.topic,
                message.id,
                message.priority.name,
                describe(e),
            )
            return False

    async def _reserve_room(self, targets: Sequence[Subscription], message: Message, nested: bool) -> None:
        """Return once every target has room for one more delivery (or raise BusOverloaded)."""
        limit = self.settings.max_backlog
        while full := [sub for sub in targets if sub.backlog >= limit]:
            if nested or self.settings.overflow == "raise":
                why = "a publisher inside a handler never waits" if nested else "overflow is 'raise'"
                raise BusOverloaded(
                    f"{full[0]!r} has {full[0].backlog} pending deliveries (max_backlog {limit}); "
                    f"{message.topic} message {message.id} refused: {why}"
                )
            await full[0].wait_for_room(limit)
