"""The in-flow message bus: topics, priorities, immutable messages, dead letters, backpressure, stats."""

from triplegain.bus.core import BusOverloaded, MessageBus
from triplegain.bus.dead_letters import DeadLetter, RetryOutcome, SubscriptionSuspended
from triplegain.bus.messages import Message, Priority, Topic
from triplegain.bus.stats import BusStats
from triplegain.bus.subscription import ErrorPolicy, Subscription

__all__ = [
    "BusOverloaded",
    "BusStats",
    "DeadLetter",
    "ErrorPolicy",
    "Message",
    "MessageBus",
    "Priority",
    "RetryOutcome",
    "Subscription",
    "SubscriptionSuspended",
    "Topic",
]
