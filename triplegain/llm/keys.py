"""API keys from the environment's conventional names, for providers configured without one."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import SecretStr

from triplegain.llm.models import ProviderConfig


def env_key_name(provider: str) -> str:
    """'deepseek' -> 'DEEPSEEK_API_KEY'; 'xai-grok' -> 'XAI_GROK_API_KEY'."""
    return re.sub(r"[^A-Z0-9]+", "_", provider.upper()) + "_API_KEY"


def with_env_keys(
    providers: Mapping[str, ProviderConfig], env: Mapping[str, str]
) -> dict[str, ProviderConfig]:
    """Each provider, its key taken from `<NAME>_API_KEY` when the configuration has none."""
    resolved = {}
    for name, config in providers.items():
        key = env.get(env_key_name(name))
        if config.api_key is None and key:
            config = config.model_copy(update={"api_key": SecretStr(key)})
        resolved[name] = config
    return resolved
