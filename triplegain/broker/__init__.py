"""Order execution: the paper broker; the live broker's order discipline (`broker.live`, not yet wired into
the cycle: issue 16)."""

from triplegain.broker.paper import PaperBroker, client_order_id

__all__ = ["PaperBroker", "client_order_id"]
