"""An LLM provider as a Prefect Block (the API key a SecretStr), with settings and environment as fallback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal
from urllib.parse import urlparse

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.llm.keys import with_env_keys
from triplegain.llm.models import ProviderConfig
from triplegain.settings import LLMSettings


class LLMProvider(Block):
    """One model behind one API. Save it as `llm-<name>`, e.g. `llm-deepseek`:

    LLMProvider(kind="openai", model="deepseek-chat", base_url="https://api.deepseek.com/v1",
                api_key="sk-...", price_in_per_mtok=0.27, price_out_per_mtok=1.10).save("llm-deepseek")
    """

    _block_type_name = "TripleGain LLM Provider"
    _block_type_slug = "triplegain-llm-provider"
    _description = (
        "A language model TripleGain may ask: wire format, model, endpoint, key, timeout and prices."
    )

    kind: Literal["openai", "anthropic"] = Field(
        description="openai (also DeepSeek, xAI, Ollama) or anthropic"
    )
    model: str = Field(description="e.g. deepseek-chat, claude-3-5-sonnet-20241022, gpt-4o")
    base_url: str | None = Field(None, description="Leave empty for the SDK's default endpoint")
    api_key: SecretStr | None = Field(None, description="Never logged, stored or put in a prompt")
    timeout_seconds: float = Field(30, gt=0)
    max_tokens: int = Field(1024, ge=1)
    price_in_per_mtok: Decimal = Field(Decimal(0), ge=0, description="USD per million input tokens")
    price_out_per_mtok: Decimal = Field(Decimal(0), ge=0, description="USD per million output tokens")
    max_concurrency: int = Field(4, ge=1)
    requests_per_minute: int = Field(60, ge=1)

    def to_config(self, name: str) -> ProviderConfig:
        """The domain's provider config."""
        shared = (set(ProviderConfig.model_fields) & set(type(self).model_fields)) - {"name"}
        return ProviderConfig(name=name, **{f: getattr(self, f) for f in shared})


def resolve_providers(
    settings: LLMSettings, env: Mapping[str, str] | None = None
) -> tuple[dict[str, ProviderConfig], list[str]]:
    """Every usable provider an agent uses, and the names skipped for want of a key.

    Each comes from its block `llm-<name>` if saved, else settings, else the built-in defaults; its key
    from there or `<NAME>_API_KEY`. A provider without a key and without a local endpoint is skipped.
    """
    found: dict[str, ProviderConfig] = {}
    missing = []
    for name in settings.referenced():
        try:
            found[name] = LLMProvider.load(f"llm-{name}").to_config(name)
        except ValueError:
            config = settings.known_providers().get(name)
            if config is None:
                missing.append(name)
            else:
                found[name] = config
    if missing:
        allowed = "a provider must be saved as block llm-<name> or set in llm.providers"
        raise ConfigError([ConfigProblem("llm", m, allowed) for m in missing])
    keyed = with_env_keys(found, os.environ if env is None else env)
    usable = {
        name: config for name, config in keyed.items() if config.api_key is not None or is_local(config)
    }
    return usable, [name for name in keyed if name not in usable]


def is_local(config: ProviderConfig) -> bool:
    """True for an endpoint on this machine (Ollama, vLLM), which needs no key."""
    host = urlparse(config.base_url or "").hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"}
