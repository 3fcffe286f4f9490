"""Asking a model for a structured answer: the schema in the prompt, JSON extracted and validated,
one repair re-ask when the answer does not fit, then LLMOutputInvalid."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from triplegain.errors import LLMError, LLMOutputInvalid
from triplegain.llm.adapters import ChatModel, chat_model
from triplegain.llm.attempts import Sent, record_answer, request
from triplegain.llm.jsonparse import extract_json_object
from triplegain.llm.models import Answer, Completion, Prompt, ProviderConfig, T, Usage

_SHOWN_CHARS = 2_000  # of an invalid answer, quoted back in the repair re-ask


async def ask(model: ChatModel, prompt: Prompt, schema: type[T]) -> Answer[T]:
    """The model's answer parsed into `schema`, with usage summed over every call it took; each request
    is recorded as it ends (`triplegain.llm.attempts`)."""
    instructed = Prompt(system=f"{prompt.system}\n\n{schema_instruction(schema)}", user=prompt.user)
    completion, usage, sent = await _timed(model, instructed)
    try:
        value = parse(completion.text, schema)
    except ValueError as first_error:
        record_answer(sent, "reasked", usage)
        return await _repair(model, instructed, completion.text, first_error, usage, schema)
    record_answer(sent, "ok", usage)
    return Answer(value=value, usage=usage)


async def _repair(
    model: ChatModel, instructed: Prompt, answer: str, first_error: ValueError, usage: Usage, schema: type[T]
) -> Answer[T]:
    """The one repair re-ask: the invalid answer quoted back with what was wrong."""
    repair = Prompt(system=instructed.system, user=_repair_request(instructed.user, answer, first_error))
    try:
        second, more, sent = await _timed(model, repair)
    except LLMError as e:
        e.usage = usage
        raise
    try:
        value = parse(second.text, schema)
    except ValueError as e:
        record_answer(sent, "invalid", more)
        error = LLMOutputInvalid(
            model.config.name,
            model.config.model,
            f"answer did not match {schema.__name__} after one repair re-ask: {_short(e)}",
        )
        error.usage = usage.plus(more)
        raise error from None
    record_answer(sent, "repaired", more)
    return Answer(value=value, usage=usage.plus(more), repaired=True)


async def ask_provider(config: ProviderConfig, prompt: Prompt, schema: type[T]) -> Answer[T]:
    """`ask` on a client opened for this call and closed after it (clients never outlive a call)."""
    async with chat_model(config) as model:
        return await ask(model, prompt, schema)


def parse(text: str, schema: type[T]) -> T:
    """The first JSON object in `text`, validated into `schema` (ValueError otherwise)."""
    data = extract_json_object(text)
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise ValueError(_short(e)) from None


def schema_instruction(schema: type[BaseModel]) -> str:
    """The output contract appended to every system prompt."""
    return (
        "Answer with exactly one JSON object and nothing else. It must validate against this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), separators=(",", ":"))
    )


async def _timed(model: ChatModel, prompt: Prompt) -> tuple[Completion, Usage, Sent]:
    """One request, its failure or cut-off recorded; the answer with what it cost."""
    config = model.config
    with request(config) as sent:
        completion = await model.complete(prompt)
    usage = Usage(
        provider=config.name,
        model=config.model,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        latency_ms=sent.elapsed_ms(),
        cost_usd=config.cost(completion.tokens_in, completion.tokens_out),
    )
    return completion, usage, sent


def _repair_request(user: str, answer: str, error: Exception) -> str:
    return (
        f"{user}\n\nYour previous answer could not be used: {_short(error)}\n"
        f"Previous answer (between the markers):\n<<<\n{answer[:_SHOWN_CHARS]}\n>>>\n"
        "Answer again with only the corrected JSON object."
    )


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
