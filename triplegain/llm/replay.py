"""Recorded LLM answers, and a caller that replays them: backtests with models, reproducible and free.

Every valid answer a paper or live run gets is kept as a recording, keyed by a hash of the model and the
exact prompt (system, user, answer schema). A backtest given the same prompt (the same candles, settings
and state) gets the same answer back without any network; a prompt never seen raises LLMUnavailable, so
that model abstains, and when every model abstains the offline model decides (the result says which).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from triplegain.errors import LLMUnavailable
from triplegain.llm.models import Answer, Prompt, ProviderConfig, T, Usage


class Recording(BaseModel):
    """One recorded answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    provider: str
    model: str
    schema_name: str
    answer: dict[str, Any]
    recorded_at: AwareDatetime
    cycle_id: str | None = None


def recording_key(model: str, prompt: Prompt, schema: type[BaseModel]) -> str:
    """The hash an answer is recorded and found under: model, system and user text, answer schema."""
    canonical = json.dumps([model, prompt.system, prompt.user, schema.__name__], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ReplayCaller:
    """A gateway caller that answers from recordings only (never the network)."""

    def __init__(self, recordings: dict[str, dict[str, Any]]) -> None:
        self.recordings = recordings
        self.hits = 0
        self.misses = 0

    async def __call__(self, config: ProviderConfig, prompt: Prompt, schema: type[T]) -> Answer[T]:
        recorded = self.recordings.get(recording_key(config.model, prompt, schema))
        if recorded is None:
            self.misses += 1
            raise LLMUnavailable(config.name, config.model, "no recorded answer for this prompt")
        self.hits += 1
        return Answer(
            value=schema.model_validate(recorded), usage=Usage(provider=config.name, model=config.model)
        )
