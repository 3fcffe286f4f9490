"""LLM provider blocks: found by name, settings and the environment as fallbacks, the key never shown."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from blocks.llm import LLMProvider, resolve_providers
from triplegain.errors import ConfigError
from triplegain.settings import LLMSettings

KEY = "sk-block-SECRET-42"


def settings(**providers: dict[str, str]) -> LLMSettings:
    return LLMSettings(providers=providers, decision_models=list(providers), resolution_chain=[])  # type: ignore[arg-type]


def test_a_saved_block_supplies_the_whole_provider() -> None:
    LLMProvider(kind="anthropic", model="claude-x", api_key=SecretStr(KEY), price_in_per_mtok=3).save(  # type: ignore[arg-type]
        "llm-claude-block", overwrite=True
    )

    resolved, _ = resolve_providers(
        LLMSettings(decision_models=["claude-block"], resolution_chain=[]), env={}
    )

    config = resolved["claude-block"]
    assert (config.kind, config.model, str(config.price_in_per_mtok)) == ("anthropic", "claude-x", "3")
    assert config.api_key is not None and config.api_key.get_secret_value() == KEY
    assert KEY not in repr(config) and KEY not in repr(LLMProvider.load("llm-claude-block"))


def test_settings_are_the_fallback_and_the_environment_gives_the_key() -> None:
    s = settings(**{"local-deepseek": {"kind": "openai", "model": "deepseek-chat"}})

    resolved, _ = resolve_providers(s, env={"LOCAL_DEEPSEEK_API_KEY": KEY})

    assert resolved["local-deepseek"].api_key.get_secret_value() == KEY  # type: ignore[union-attr]


def test_a_configured_key_is_not_replaced_by_the_environment() -> None:
    s = settings(mine={"kind": "openai", "model": "m", "api_key": "from-settings"})

    resolved, _ = resolve_providers(s, env={"MINE_API_KEY": "from-env"})

    assert resolved["mine"].api_key.get_secret_value() == "from-settings"  # type: ignore[union-attr]


def test_a_provider_found_nowhere_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"llm='ghost'.*block llm-<name>"):
        resolve_providers(LLMSettings(resolution_chain=["ghost"]), env={})


def test_by_default_conflicts_go_to_deepseek_then_claude_once_keys_exist() -> None:
    keyless, skipped = resolve_providers(LLMSettings(), env={})
    keyed, _ = resolve_providers(LLMSettings(), env={"DEEPSEEK_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY})

    assert keyless == {} and skipped == ["deepseek", "anthropic"]
    assert [c.model for c in keyed.values()] == ["deepseek-chat", "claude-3-5-sonnet-20241022"]


def test_a_local_endpoint_needs_no_key() -> None:
    local = settings(
        ollama={"kind": "openai", "model": "qwen2.5:7b", "base_url": "http://localhost:11434/v1"}
    )

    resolved, skipped = resolve_providers(local, env={})

    assert list(resolved) == ["ollama"] and skipped == []
