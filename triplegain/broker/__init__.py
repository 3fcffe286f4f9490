"""Order execution: the paper broker (live exchange execution comes later)."""

from triplegain.broker.paper import PaperBroker, client_order_id

__all__ = ["PaperBroker", "client_order_id"]
