"""Recorded answers: keyed by model and exact prompt, replayed without any network, misses are explicit."""

import asyncio
from decimal import Decimal

import pytest
from pydantic import BaseModel

from triplegain.errors import LLMUnavailable
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig, Usage
from triplegain.llm.replay import ReplayCaller, recording_key

CONFIG = ProviderConfig(name="v1", kind="openai", model="model-a")
PROMPT = Prompt(system="rules", user="BTC at 100")


class Verdict(BaseModel):
    action: str
    confidence: float


def test_the_key_changes_with_model_prompt_and_schema() -> None:
    class Other(BaseModel):
        action: str

    key = recording_key("model-a", PROMPT, Verdict)

    assert key == recording_key("model-a", Prompt(system="rules", user="BTC at 100"), Verdict)
    assert len({key, recording_key("model-b", PROMPT, Verdict), recording_key("model-a", PROMPT, Other)}) == 3
    assert key != recording_key("model-a", Prompt(system="rules", user="BTC at 101"), Verdict)


def test_the_gateway_records_valid_answers_and_a_replay_gives_them_back() -> None:
    async def live(config: ProviderConfig, prompt: Prompt, schema: type[BaseModel]) -> Answer[BaseModel]:
        return Answer(
            value=schema.model_validate({"action": "BUY", "confidence": 0.7}),
            usage=Usage(provider="v1", model="model-a"),
        )

    budget = Budget(Decimal(1), Decimal(1))
    gateway = LLMGateway(ProviderBreakers(BreakerPolicy(), {}), budget, "cycle-1", call=live)
    asyncio.run(gateway.ask("trading_decision", [CONFIG], PROMPT, Verdict))
    (recording,) = gateway.result().recordings
    assert recording.key == recording_key("model-a", PROMPT, Verdict) and recording.cycle_id == "cycle-1"

    replay = ReplayCaller({recording.key: recording.answer})
    answer = asyncio.run(replay(CONFIG, PROMPT, Verdict))
    assert answer.value == Verdict(action="BUY", confidence=0.7) and answer.usage.cost_usd == 0
    with pytest.raises(LLMUnavailable, match="no recorded answer"):
        asyncio.run(replay(CONFIG, Prompt(system="rules", user="BTC at 99"), Verdict))
    assert (replay.hits, replay.misses) == (1, 1)
