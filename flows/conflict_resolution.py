"""The conflict-resolution subflow: at most once per cycle, all of the cycle's conflicts in one question.

The primary model of `llm.resolution_chain` is asked (each call an ask-llm task with retries); if it is slow,
the fallback starts in parallel and the first valid answer wins; past the budget (10 s) or without any model,
the conservative action. It runs with its own gateway, seeded with the cycle's breaker states and spending so
far, and returns its resolutions with what its LLM calls left to persist.
"""

from __future__ import annotations

from decimal import Decimal

from prefect import flow

from flows.llm_setup import gateway_for
from triplegain.cycle import ResolutionRun
from triplegain.llm.breaker import ProviderBreaker
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.models.conflicts import Conflict
from triplegain.models.decision import TradingSignal
from triplegain.resolution import AGENT, ResolutionAnswer, resolve
from triplegain.settings import Settings


@flow(name="conflict-resolution", log_prints=False)
async def resolve_conflicts(
    conflicts: list[Conflict],
    signals: dict[str, TradingSignal],
    settings: Settings,
    chain: list[ProviderConfig],
    breakers: dict[str, ProviderBreaker],
    cycle_id: str,
    spent_today: Decimal = Decimal(0),
    spent_cycle: Decimal = Decimal(0),
) -> ResolutionRun:
    """Resolve every conflict of a cycle within the resolution budget."""
    gateway = gateway_for(settings, breakers, spent_today, cycle_id, spent_cycle)

    async def ask(config: ProviderConfig, prompt: Prompt) -> Answer[ResolutionAnswer]:
        return await gateway.ask(AGENT, [config], prompt, ResolutionAnswer)

    resolutions = await resolve(conflicts, signals, chain, ask, settings.conflicts)
    return ResolutionRun(resolutions, gateway.result(), asked=bool(chain))
