"""The coordinator task: exits, risk checks and execution for every symbol (paper, or a live account's
exchange broker built inside the task from the keys)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain import coordinator
from triplegain.broker.session import exchange_broker
from triplegain.cycle_types import Coordination, CoordinationInput
from triplegain.live_gate import ExchangeKeys
from triplegain.settings import Settings


@task(name="coordinate", cache_policy=NO_CACHE)
def coordinate(
    request: CoordinationInput, settings: Settings, keys: ExchangeKeys | None = None
) -> Coordination:
    """Risk engine and broker over the run's signals (and a DCA batch's trades); deterministic, so a retry
    repeats it exactly. With `keys` (a live account, the gate passed), orders go to the exchange, each
    journalled first, so a retry asks for the same orders rather than placing new ones."""
    broker = exchange_broker(settings, keys, request.account) if keys is not None else None
    return coordinator.coordinate(request, settings, broker)
