"""How the bus delivers: the handler runs in the publisher's task or in the task draining a subscription's
queue, never under a lock; failures are counted, dead-lettered or raised to the publisher.

The hot path is a publisher's own fan-out to idle subscriptions (`_deliver_now`): handlers are called
inline with no object per delivery, the latency of its first delivery is sampled (reading the clock for
every delivery would cost more than delivering to a no-op handler), and the message was checked against its
deadline when published. Queued deliveries are each timed and checked against their deadline.

`MessageBus` (triplegain.bus.core) is the public face; this is its delivery machinery.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import datetime
from heapq import heappop

from triplegain.bus.dead_letters import DeadLetterQueue, SubscriptionSuspended, failed
from triplegain.bus.messages import Message
from triplegain.bus.stats import LatencyWindow
from triplegain.bus.subscription import Delivery, ErrorPolicy, Subscription
from triplegain.settings import BusSettings

log = logging.getLogger("triplegain.bus")
Clock = Callable[[], datetime]
# The message whose handler is running in this task, if any: the causation of what it publishes, and
# the sign that a publisher is nested inside a handler.
current: ContextVar[Message | None] = ContextVar("triplegain_bus_current", default=None)
_now_ns = time.perf_counter_ns


async def _settle(result: object) -> None:
    """Await what a sync-or-async handler returned, when it is awaitable."""
    if result is not None and hasattr(result, "__await__"):
        await result


def describe(error: BaseException) -> str:
    """An error as its type and message."""
    return f"{type(error).__name__}: {error}"


class Dispatcher:
    """Delivery to subscriptions, with the counters, latency window and dead letters it keeps."""

    def __init__(self, settings: BusSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._dead = DeadLetterQueue(settings.max_dead_letters)
        self._latency = LatencyWindow(settings.latency_samples)
        self._seq = itertools.count()
        self._delivered = self._errors = self._expired = 0
        self._backlog = 0
        self._high_water = 0
        self._rescue: set[asyncio.Task[None]] = set()
        self._failing: set[Subscription] = set()  # subscriptions whose last delivery failed

    async def _announce(self, event: SubscriptionSuspended) -> None:
        """Publish a suspension on the bus (the bus does)."""
        raise NotImplementedError

    def _suspended(self, sub: Subscription) -> None:
        """A subscription was suspended (the bus forgets its routing of it)."""
        raise NotImplementedError

    async def _deliver_now(
        self,
        targets: Sequence[Subscription],
        message: Message,
        published_ns: int,
        deadline: datetime,
        awaited: bool,
    ) -> None:
        """Deliver to each target in turn in this task (the caller holds them all: busy), and after each
        what was published to it meanwhile; a failure to raise reaches the publisher after the others
        received. The hot path (module docstring): handlers called inline, no object per delivery."""
        token, raised, delivered, failing, sub = current.set(message), None, 0, self._failing, targets[0]
        try:
            for sub in targets:
                if sub.receiving:
                    try:
                        if sub.is_async:
                            await sub.handler(message)  # type: ignore[misc]
                        else:
                            await _settle(sub.handler(message))
                        delivered += 1
                        if failing and sub in failing:
                            failing.discard(sub)
                            sub.consecutive_failures = 0
                    except Exception as e:
                        raised = await self._fail_inline(
                            sub, Delivery(message, published_ns, deadline, awaited), e, raised
                        )
                sub.busy = False
                if sub._pending:
                    await self._drain(sub)
        except BaseException:  # cancelled mid-way: the rest still get the message, in order
            at = next(i for i, target in enumerate(targets) if target is sub)
            self._hand_on(targets[at + 1 :], Delivery(message, published_ns, deadline), sub)
            raise
        finally:
            current.reset(token)
            self._delivered += delivered
        if raised is not None:
            raise raised

    async def _fail_inline(
        self, sub: Subscription, delivery: Delivery, error: Exception, raised: BaseException | None
    ) -> BaseException | None:
        """File a failure of the inline fan-out; returns what the publisher is to raise (the first)."""
        delivery.awaited = delivery.awaited and raised is None
        await self._fail(sub, delivery, error)
        return raised or delivery.error

    def _hand_on(self, rest: Sequence[Subscription], delivery: Delivery, release: Subscription) -> None:
        """Queue `delivery` for the targets not reached, and drain what is pending in new tasks."""
        for sub in rest:
            self._enqueue(sub, Delivery(delivery.message, delivery.published_ns, delivery.deadline))
        for sub in [release, *rest]:
            sub.busy = False
            if sub._pending and sub.active:
                self._spawn_drain(sub)

    async def _queue_and_deliver(
        self,
        targets: Sequence[Subscription],
        message: Message,
        published_ns: int,
        deadline: datetime,
        nested: bool,
    ) -> None:
        """Queue for every target with no await in between (each sees publish order), deliver where the
        subscription is idle, and wait for the busy ones unless inside a handler."""
        deliveries = [Delivery(message, published_ns, deadline, not nested) for _ in targets]
        for sub, delivery in zip(targets, deliveries, strict=True):
            self._enqueue(sub, delivery)
        for sub, delivery in zip(targets, deliveries, strict=True):
            if delivery.done:
                continue
            if not sub.busy:
                await self._drain(sub)
            elif not nested:
                await delivery.future()
        for delivery in deliveries:
            if delivery.error is not None:
                raise delivery.error

    async def _handle(self, sub: Subscription, delivery: Delivery) -> None:
        """Run the handler for one delivery (its message the task's current one); count, time, file errors."""
        if not sub.active or sub.suspended:
            return
        self._latency.samples.append(_now_ns() - delivery.published_ns)
        try:
            await _settle(sub.handler(delivery.message))
        except Exception as e:
            await self._fail(sub, delivery, e)
            return
        self._delivered += 1
        self._failing.discard(sub)
        sub.consecutive_failures = 0
        delivery.outcome = "delivered"

    def _enqueue(self, sub: Subscription, delivery: Delivery) -> None:
        sub.push(delivery, next(self._seq))
        self._backlog += 1
        self._high_water = max(self._high_water, self._backlog)

    async def _drain(self, sub: Subscription) -> None:
        """Deliver `sub`'s queue in order until empty; this task owns `sub` meanwhile.

        A delivery is skipped when the subscription ended or the message expired while queued.
        """
        sub.busy = True
        pending, clock = sub._pending, self.clock
        try:
            while pending:
                delivery = heappop(pending)[2]
                self._backlog -= 1
                if sub._space is not None:
                    sub._space.set()
                try:
                    if clock() > delivery.deadline and sub.active and not sub.suspended:
                        self._expired += 1
                        continue
                    token = current.set(delivery.message)
                    try:
                        await self._handle(sub, delivery)
                    finally:
                        current.reset(token)
                finally:
                    delivery.finish()
        finally:
            sub.busy = False
            if pending and sub.active:  # this task was cancelled mid-drain: finish in a new one
                self._spawn_drain(sub)

    def _spawn_drain(self, sub: Subscription) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(sub))
        self._rescue.add(task)
        task.add_done_callback(self._rescue.discard)

    async def _fail(self, sub: Subscription, delivery: Delivery, error: BaseException) -> None:
        """Count, log and file a handler's failure; suspend the subscription after too many in a row."""
        self._errors += 1
        sub.consecutive_failures += 1
        self._failing.add(sub)
        message = delivery.message
        log.error(
            "%r failed on %s message %s (priority %s, source %s): %s",
            sub,
            message.topic,
            message.id,
            message.priority.name,
            message.source,
            describe(error),
        )
        self._file(sub, delivery, error)
        if sub.consecutive_failures >= self.settings.suspend_after_failures and not sub.suspended:
            sub.suspended = True
            self._suspended(sub)
            event = SubscriptionSuspended(
                subscription_id=sub.id,
                subscriber=sub.subscriber,
                pattern=sub.pattern,
                consecutive_failures=sub.consecutive_failures,
                last_error=describe(error),
            )
            await self._announce(event)

    def _file(self, sub: Subscription, delivery: Delivery, error: BaseException) -> None:
        """Hand a failure to its waiting publisher (propagate) or to the dead-letter queue."""
        letter = delivery.retry_of
        if letter is not None:
            attempts = letter.attempts + 1
            exhausted = attempts >= self.settings.dead_letter_attempts
            update = {"attempts": attempts, "error": describe(error), "last_failed_at": self.clock()}
            self._dead.add(letter.model_copy(update={**update, "exhausted": exhausted}))
            delivery.outcome = "exhausted" if exhausted else "failed_again"
        elif sub.policy is ErrorPolicy.PROPAGATE and delivery.awaited and delivery.error is None:
            delivery.error = error
            delivery.outcome = "raised"
        else:
            self._dead.add(failed(delivery.message, sub.id, sub.subscriber, error, self.clock()))
            delivery.outcome = "dead_lettered"
