"""The in-flow message bus: priority delivery with no lock held while a handler runs.

How delivery works (one asyncio event loop):
- Each subscription has its own queue (priority, then publish order). A publisher queues the message for
  every matching subscription. If the subscription is idle, the publisher delivers right away, in its own
  task; if another task is delivering to it, the publisher waits for that task to reach its message.
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

import asyncio
import functools
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from heapq import heappop

from pydantic import BaseModel, ConfigDict

from triplegain.bus.dead_letters import DeadLetter, DeadLetterQueue, failed
from triplegain.bus.messages import Message, Priority, Topic
from triplegain.bus.stats import BusStats, LatencyWindow
from triplegain.bus.subscription import Delivery, ErrorPolicy, Filter, Handler, Subscription, covers
from triplegain.errors import TripleGainError
from triplegain.settings import BusSettings

log = logging.getLogger("triplegain.bus")
Clock = Callable[[], datetime]
# The message whose handler is running in this task, if any: the causation of what it publishes, and
# the sign that a publisher is nested inside a handler.
_current: ContextVar[Message | None] = ContextVar("triplegain_bus_current", default=None)


class BusOverloaded(TripleGainError):
    """A subscription's backlog is full and the bus is configured not to wait (or cannot)."""


class SubscriptionSuspended(BaseModel):
    """System event: a subscription failed too often in a row and receives nothing until resumed."""

    model_config = ConfigDict(frozen=True)

    subscription_id: int
    subscriber: str
    pattern: str
    consecutive_failures: int
    last_error: str


class RetryOutcome(BaseModel):
    """What a dead-letter retry did."""

    model_config = ConfigDict(frozen=True)

    delivered: int
    failed_again: int
    exhausted: int
    skipped: int


utc_now: Clock = functools.partial(datetime.now, UTC)  # the default bus clock


class MessageBus:
    """Publish/subscribe inside one flow run, with priorities, TTL, dead letters and backpressure."""

    def __init__(
        self, settings: BusSettings | None = None, clock: Clock = utc_now, correlation_id: str | None = None
    ) -> None:
        self.settings = settings or BusSettings()
        self.clock = clock
        self.correlation_id = correlation_id
        self._subscriptions: list[Subscription] = []
        self._by_topic: dict[Topic, tuple[Subscription, ...]] = {}
        self._history: dict[Topic, deque[Message]] = {}
        self._dead = DeadLetterQueue(self.settings.max_dead_letters)
        self._latency = LatencyWindow(self.settings.latency_samples)
        self._seq = itertools.count()
        self._published = self._delivered = self._errors = self._filter_errors = self._expired = 0
        self._backlog = 0
        self._high_water = 0
        self._rescue: set[asyncio.Task[None]] = set()
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
        cause = _current.get()
        return Message(
            timestamp=self.clock(),
            topic=topic,
            source=source,
            payload=payload,
            priority=priority,
            correlation_id=cause.correlation_id if cause else self.correlation_id,
            causation_id=cause.id if cause else None,
            ttl_seconds=ttl_seconds or self.settings.default_ttl_seconds,
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

    async def publish(self, message: Message) -> int:
        """Deliver `message` to every matching subscription; returns how many it was queued for.

        A top-level publisher returns once every subscriber has handled it, and gets the exception of a
        `propagate` subscriber (after the others received the message). A publisher inside a handler
        never waits on another task: where the subscription is busy the message is queued, delivered in
        order once the subscription is free, and a failure there is dead-lettered instead of raised.
        Raises BusOverloaded when a backlog is full and waiting is not allowed.
        """
        published_ns = time.perf_counter_ns()
        topic = message.topic
        subs = self._by_topic.get(topic)
        if subs is None:
            subs = self._matching(topic)
        nested = _current.get() is not None
        targets = [
            sub for sub in subs if not sub.suspended and (sub.filter is None or self._passes(sub, message))
        ]
        limit = self.settings.max_backlog
        for sub in targets:
            if len(sub._pending) >= limit:
                await self._reserve_room(targets, message, nested)
                break
        self._remember(message)
        if not targets:
            return 0
        deadline = message.timestamp + self._ttl(message.ttl_seconds)
        if len(targets) == 1 and not targets[0].busy and not targets[0]._pending:
            # Nothing queued, nobody delivering: hand it straight over (the queue would do the same).
            delivery = Delivery(message, published_ns, deadline, True)
            await self._drain(targets[0], delivery)
            if delivery.error is not None:
                raise delivery.error
            return 1
        # Queued for every subscriber at once, with no await in between: each sees publish order.
        seq = self._seq
        deliveries = []
        for sub in targets:
            delivery = Delivery(message, published_ns, deadline, not nested)
            sub.push(delivery, next(seq))
            deliveries.append(delivery)
        self._backlog += len(deliveries)
        if self._backlog > self._high_water:
            self._high_water = self._backlog
        for sub, delivery in zip(targets, deliveries, strict=True):
            if delivery.done:
                continue
            if not sub.busy:
                delivery.awaited = True
                await self._drain(sub)
            elif not nested:
                await delivery.future()
        for delivery in deliveries:
            if delivery.error is not None:
                raise delivery.error
        return len(deliveries)

    def latest(self, topic: Topic, filter: Filter | None = None) -> Message | None:
        """The newest unexpired message of `topic` that passes `filter` (searches that topic only)."""
        now = self.clock()
        for message in reversed(self._history.get(topic, ())):
            if not message.expired(now) and (filter is None or filter(message)):
                return message
        return None

    def history(self, topic: Topic, since: datetime | None = None, limit: int = 100) -> list[Message]:
        """Unexpired messages of `topic`, newest first, at most `limit`, none older than `since`."""
        now, found = self.clock(), list[Message]()
        for message in reversed(self._history.get(topic, ())):
            if len(found) >= limit or (since is not None and message.timestamp < since):
                break
            if not message.expired(now):
                found.append(message)
        return found

    def purge_expired(self) -> int:
        """Drop expired messages from the front of each topic's history (queries never return them anyway)."""
        now, purged = self.clock(), 0
        for history in self._history.values():
            while history and history[0].expired(now):
                history.popleft()
                purged += 1
        return purged

    def dead_letters(self) -> list[DeadLetter]:
        """The dead-letter queue, oldest first."""
        return self._dead.entries()

    async def retry_dead_letters(self) -> RetryOutcome:
        """Re-deliver, in order, every dead letter with attempts left to its still-active subscription."""
        if _current.get() is not None:
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

    def _ttl(self, seconds: float) -> timedelta:
        """A TTL as a timedelta, cached (messages mostly share a handful of TTLs)."""
        ttl = self._ttls.get(seconds)
        if ttl is None:
            ttl = self._ttls[seconds] = timedelta(seconds=seconds)
        return ttl

    def _remember(self, message: Message) -> None:
        history = self._history.get(message.topic)
        if history is None:
            history = self._history[message.topic] = deque(maxlen=self.settings.history_per_topic)
        history.append(message)
        self._published += 1

    def _matching(self, topic: Topic) -> tuple[Subscription, ...]:
        subs = self._by_topic.get(topic)
        if subs is None:
            subs = self._by_topic[topic] = tuple(s for s in self._subscriptions if s.matches_topic(topic))
        return subs

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
                _describe(e),
            )
            return False

    def _enqueue(self, sub: Subscription, delivery: Delivery) -> None:
        sub.push(delivery, next(self._seq))
        self._backlog += 1
        self._high_water = max(self._high_water, self._backlog)

    async def _reserve_room(self, targets: list[Subscription], message: Message, nested: bool) -> None:
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

    async def _drain(self, sub: Subscription, first: Delivery | None = None) -> None:
        """Deliver `first` (if given), then `sub`'s queue in order until empty; this task owns `sub`.

        For each delivery: skip it if the subscription ended or the message expired while queued;
        otherwise run the handler with the message as the task's current one; count, time, file failures.
        """
        sub.busy = True
        pending, clock, samples = sub._pending, self.clock, self._latency.samples
        delivery = first
        try:
            while delivery is not None or pending:
                if delivery is None:
                    delivery = heappop(pending)[2]
                    self._backlog -= 1
                    if sub._space is not None:
                        sub._space.set()
                try:
                    if not sub.active or sub.suspended:
                        continue
                    if clock() > delivery.deadline:
                        self._expired += 1
                        continue
                    samples.append(time.perf_counter_ns() - delivery.published_ns)
                    token = _current.set(delivery.message)
                    try:
                        result = sub.handler(delivery.message)
                        if result is not None and hasattr(result, "__await__"):
                            await result
                    except Exception as e:
                        self._errors += 1
                        sub.consecutive_failures += 1
                        await self._failed(sub, delivery, e)
                        continue
                    finally:
                        _current.reset(token)
                    self._delivered += 1
                    sub.consecutive_failures = 0
                    delivery.outcome = "delivered"
                finally:
                    delivery.finish()
                    delivery = None
        finally:
            sub.busy = False
            if pending and sub.active:  # this task was cancelled mid-drain: finish in a new one
                task = asyncio.get_running_loop().create_task(self._drain(sub))
                self._rescue.add(task)
                task.add_done_callback(self._rescue.discard)

    async def _failed(self, sub: Subscription, delivery: Delivery, error: BaseException) -> None:
        message = delivery.message
        log.error(
            "%r failed on %s message %s (priority %s, source %s): %s",
            sub,
            message.topic,
            message.id,
            message.priority.name,
            message.source,
            _describe(error),
        )
        self._file(sub, delivery, error)
        if sub.consecutive_failures >= self.settings.suspend_after_failures and not sub.suspended:
            sub.suspended = True
            event = SubscriptionSuspended(
                subscription_id=sub.id,
                subscriber=sub.subscriber,
                pattern=sub.pattern,
                consecutive_failures=sub.consecutive_failures,
                last_error=_describe(error),
            )
            await self.publish(self.message(Topic.SYSTEM_EVENTS, "bus", event, Priority.HIGH))

    def _file(self, sub: Subscription, delivery: Delivery, error: BaseException) -> None:
        """Hand a failure to its waiting publisher (propagate) or to the dead-letter queue."""
        letter = delivery.retry_of
        if letter is not None:
            attempts = letter.attempts + 1
            exhausted = attempts >= self.settings.dead_letter_attempts
            update = {"attempts": attempts, "error": _describe(error), "last_failed_at": self.clock()}
            self._dead.add(letter.model_copy(update={**update, "exhausted": exhausted}))
            delivery.outcome = "exhausted" if exhausted else "failed_again"
        elif sub.policy is ErrorPolicy.PROPAGATE and delivery.awaited:
            delivery.error = error
            delivery.outcome = "raised"
        else:
            self._dead.add(failed(delivery.message, sub.id, sub.subscriber, error, self.clock()))
            delivery.outcome = "dead_lettered"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
