"""What every flow that asks language models prepares first: providers, limits, SDKs, today's spending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from blocks.llm import resolve_providers
from tasks.llm import ensure_llm_limits
from tasks.storage import llm_spent
from triplegain.aio import run_sync
from triplegain.llm.adapters import preload_sdks
from triplegain.llm.models import ProviderConfig
from triplegain.settings import Settings


@dataclass(frozen=True)
class LLMSetup:
    """The providers this run may ask and what was already spent today."""

    providers: dict[str, ProviderConfig]
    spent_today: Decimal


def llm_setup(settings: Settings) -> LLMSetup | None:
    """The providers any agent uses (blocks, settings, env keys), with limits and SDKs ready; None if none."""
    if not settings.llm.referenced():
        return None
    providers = resolve_providers(settings.llm)
    preload_sdks(list(providers.values()))
    run_sync(ensure_llm_limits(list(providers.values())))
    day_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return LLMSetup(providers, llm_spent(day_start, settings))
