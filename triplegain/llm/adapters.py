"""Adapters on the official SDKs: one `complete(prompt)` call, errors mapped to ours.

Every client has the SDK-level timeout of its provider and the SDK's own retries off: retrying is the
caller's decision (Prefect task retries, for LLMUnavailable only). No message we raise contains the key.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from email.utils import parsedate_to_datetime
from typing import Any

from triplegain.errors import LLMRejected, LLMUnavailable
from triplegain.llm.models import Completion, Prompt, ProviderConfig

_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class ChatModel(ABC):
    """A model that completes a prompt into text."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    async def complete(self, prompt: Prompt) -> Completion:
        """The model's answer text and token counts; raises LLMUnavailable or LLMRejected."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the SDK client's connections."""

    async def __aenter__(self) -> ChatModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _unavailable(self, detail: str, retry_after: float | None = None) -> LLMUnavailable:
        return LLMUnavailable(self.config.name, self.config.model, self._redact(detail), retry_after)

    def _rejected(self, detail: str) -> LLMRejected:
        return LLMRejected(self.config.name, self.config.model, self._redact(detail))

    def _redact(self, text: str) -> str:
        key = self.config.api_key.get_secret_value() if self.config.api_key else ""
        return text.replace(key, "***") if key else text

    def _translate(self, error: Exception) -> Exception:
        """An SDK exception (both SDKs share these names) as LLMUnavailable or LLMRejected."""
        import anthropic
        import openai

        timeout = self.config.timeout_seconds
        if isinstance(error, openai.APITimeoutError | anthropic.APITimeoutError):
            late = self._unavailable(f"no answer within the {timeout:g} s timeout")
            late.timed_out = True
            return late
        if isinstance(error, openai.APIConnectionError | anthropic.APIConnectionError):
            return self._unavailable(f"connection failed: {type(error.__cause__ or error).__name__}")
        if isinstance(error, openai.APIStatusError | anthropic.APIStatusError):
            status = error.status_code
            detail = f"HTTP {status}: {_body_message(error.body) or type(error).__name__}"
            if status >= 500 or status in _TRANSIENT_STATUS:
                return self._unavailable(detail, retry_after_seconds(error.response.headers))
            return self._rejected(detail)
        return self._unavailable(f"unreadable response: {type(error).__name__}: {error}")


class OpenAIChat(ChatModel):
    """OpenAI chat completions: OpenAI itself, and DeepSeek, xAI, Ollama or vLLM through `base_url`."""

    def __init__(self, config: ProviderConfig) -> None:
        import openai  # the SDKs take over a second to import: only when a model is really used

        super().__init__(config)
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value() if config.api_key else "not-needed",
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def complete(self, prompt: Prompt) -> Completion:
        """One chat completion."""
        try:
            response = await self._client.chat.completions.create(
                model=self.config.model,
                messages=[
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user},
                ],
                max_tokens=self.config.max_tokens,
                temperature=self.config.temperature,
            )
            text = response.choices[0].message.content or ""
            usage = response.usage
        except Exception as e:
            raise self._translate(e) from None
        return Completion(
            text=text,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
        )


class AnthropicMessages(ChatModel):
    """Anthropic messages API (Claude). The current SDK takes no temperature: the model's default applies."""

    def __init__(self, config: ProviderConfig) -> None:
        import anthropic

        super().__init__(config)
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def complete(self, prompt: Prompt) -> Completion:
        """One message."""
        try:
            response = await self._client.messages.create(
                model=self.config.model,
                max_tokens=self.config.max_tokens,
                system=prompt.system,
                messages=[{"role": "user", "content": prompt.user}],
            )
            text = "".join(getattr(block, "text", "") for block in response.content)
        except Exception as e:
            raise self._translate(e) from None
        return Completion(
            text=text, tokens_in=response.usage.input_tokens, tokens_out=response.usage.output_tokens
        )


def preload_sdks(configs: list[ProviderConfig]) -> None:
    """Import the SDKs these providers need now (over a second the first time), not inside a timed call."""
    import importlib

    for kind in {c.kind for c in configs}:
        importlib.import_module(kind)


def chat_model(config: ProviderConfig) -> ChatModel:
    """The adapter for a provider's wire format."""
    return AnthropicMessages(config) if config.kind == "anthropic" else OpenAIChat(config)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a 429/503 asks us to wait (Retry-After in seconds or as a date, or retry-after-ms)."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _body_message(body: object) -> str | None:
    """The error message a provider put in its JSON body, if any (both APIs nest it under 'error')."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
    return None
