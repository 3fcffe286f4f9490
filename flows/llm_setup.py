"""What a flow that asks language models prepares first: the providers, limits, SDKs, today's spending
and the run's gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from prefect import get_run_logger

from blocks.llm import resolve_providers
from tasks.llm import ensure_llm_limits, llm_caller
from tasks.storage import load_llm_spent
from triplegain.aio import run_sync
from triplegain.llm.adapters import preload_sdks
from triplegain.llm.breaker import ProviderBreaker, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import ProviderConfig
from triplegain.settings import Settings


@dataclass(frozen=True)
class LLMSetup:
    """The providers this run may ask and what was already spent today."""

    providers: dict[str, ProviderConfig]
    spent_today: Decimal

    def chain(self, names: list[str]) -> list[ProviderConfig]:
        """The usable providers among `names`, in order."""
        return [self.providers[n] for n in names if n in self.providers]


def llm_setup(settings: Settings) -> LLMSetup | None:
    """The usable providers of every agent (blocks, settings, env keys), ready to call; None if none."""
    if not settings.llm.referenced():
        return None
    providers, skipped = resolve_providers(settings.llm)
    if skipped:
        get_run_logger().info(
            "LLM providers without an API key or local endpoint skipped: %s", ", ".join(skipped)
        )
    if not providers:
        return None
    preload_sdks(list(providers.values()))
    run_sync(ensure_llm_limits(list(providers.values())))
    day_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return LLMSetup(providers, load_llm_spent(day_start, settings))


def gateway_for(
    settings: Settings,
    breakers: dict[str, ProviderBreaker],
    spent_today: Decimal,
    cycle_id: str | None = None,
    spent_cycle: Decimal = Decimal(0),
) -> LLMGateway:
    """A run's gateway: breakers as stored, the budgets from settings, calls through the ask-llm task."""
    llm = settings.llm
    budget = Budget(llm.budget_per_cycle_usd, llm.budget_per_day_usd, spent_today, spent_cycle)
    return LLMGateway(ProviderBreakers(llm.breaker, breakers), budget, cycle_id, call=llm_caller(llm))
