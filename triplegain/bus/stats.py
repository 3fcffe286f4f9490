"""Bus counters and delivery-latency percentiles over a bounded window of recent deliveries."""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict


class BusStats(BaseModel):
    """A point-in-time view of the bus."""

    model_config = ConfigDict(frozen=True)

    published: int
    delivered: int
    errors: int
    filter_errors: int
    expired_undelivered: int
    dead_letters: int
    dead_lettered_total: int
    dead_letters_dropped: int
    backlog: int
    backlog_high_water: int
    subscriptions: int
    suspended: int
    latency_p50_us: float | None
    latency_p90_us: float | None
    latency_p99_us: float | None


class LatencyWindow:
    """Publish-to-handler latencies (ns) of the most recent deliveries."""

    def __init__(self, size: int) -> None:
        self.samples: deque[int] = deque(maxlen=size)

    def percentile_us(self, q: float) -> float | None:
        """The q-th percentile (0..100) in microseconds, nearest-rank; None before any delivery."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] / 1000
