"""Settings of the in-flow message bus."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from triplegain.settings.section import SECTION


class BusSettings(BaseModel):
    """The in-flow message bus (reference spec 2, with its review findings fixed)."""

    model_config = SECTION

    default_ttl_seconds: float = Field(
        300, gt=0, le=7 * 24 * 3600, description="TTL of a message that does not set its own"
    )
    history_per_topic: int = Field(
        1000, ge=1, le=1_000_000, description="Messages kept per topic for latest()/history()"
    )
    max_backlog: int = Field(
        1000, ge=1, le=1_000_000, description="Pending deliveries per subscription before backpressure"
    )
    overflow: Literal["wait", "raise"] = Field(
        "wait", description="Full backlog: publisher waits, or BusOverloaded"
    )
    suspend_after_failures: int = Field(
        10, ge=1, le=1_000_000, description="Consecutive handler failures that suspend it"
    )
    dead_letter_attempts: int = Field(
        3, ge=1, le=1_000_000, description="Delivery attempts before a dead letter is exhausted"
    )
    max_dead_letters: int = Field(
        1000, ge=1, le=1_000_000, description="Dead letters kept; the oldest are dropped and counted"
    )
    latency_samples: int = Field(
        10_000, ge=100, le=1_000_000, description="Recent deliveries behind the latency percentiles"
    )
