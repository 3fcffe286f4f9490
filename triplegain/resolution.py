"""Conflict resolution by a language model, with a conservative answer whenever no model can give one.

One question per cycle covers every conflicted symbol (reference spec 3.10). The primary model is asked
first; if it has not answered once `hedge_after_share` of the budget has passed, the next model in the
chain starts in parallel and the first valid answer wins. A failure starts the next model at once. When
the budget runs out, every model fails, or none is configured, each symbol gets its conflicts' most
conservative fallback (abort before wait). Modifications are bounded as in 3.11 and only ever reductive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from triplegain.errors import LLMError
from triplegain.llm.attempts import Cutoff, cutting
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.models.conflicts import Conflict, ConflictType, Modifications, Resolution, ResolutionAction
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import DegradationLevel, Intent, Side
from triplegain.models.trading import TradeProposal
from triplegain.settings import ConflictSettings

AGENT = "conflict_resolution"
FALLBACK_BY = "conservative-fallback"
HUNDRED = Decimal(100)

RESOLUTION_SYSTEM_PROMPT = """You coordinate a team of trading agents, and some of their findings conflict.
For each symbol listed, decide: proceed with the proposed trade, modify it (only smaller or safer),
wait for the next cycle, or abort. Weigh the signal's confidence, the market regime, the risk and the
nature of each conflict. Risk rules are absolute and are checked after you: you cannot loosen them.
Modifications (only with action "modify"): leverage (integer, may only go down), size_reduction_pct
(0 to 100), entry_adjustment_pct (-50 to 50; a better price than the market means waiting for it)."""


class SymbolDecision(BaseModel):
    """The model's answer for one symbol."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: str
    action: ResolutionAction
    confidence: float = Field(ge=0, le=1)
    reasoning: str = ""
    modifications: Modifications | None = None

    @field_validator("action", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("reasoning")
    @classmethod
    def _short(cls, value: str) -> str:
        return value[:500]


class ResolutionAnswer(BaseModel):
    """The schema the model answers in: one decision per conflicted symbol."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decisions: list[SymbolDecision]


Ask = Callable[[ProviderConfig, Prompt], Awaitable[Answer[ResolutionAnswer]]]


def resolution_prompt(conflicts: Sequence[Conflict], signals: dict[str, TradingSignal]) -> Prompt:
    """Every conflicted symbol's proposed trade and conflicts, as data."""
    symbols = []
    for symbol in dict.fromkeys(c.symbol for c in conflicts):
        signal = signals.get(symbol)
        symbols.append(
            {
                "symbol": symbol,
                "proposed": None
                if signal is None
                else {
                    "action": signal.action.value,
                    "confidence": round(signal.confidence, 2),
                    "entry_price": _str(signal.entry_price),
                    "stop_loss": _str(signal.stop_loss),
                    "take_profit": _str(signal.take_profit),
                },
                "conflicts": [
                    c.model_dump(mode="json", include={"type", "description", "details"})
                    for c in conflicts
                    if c.symbol == symbol
                ],
            }
        )
    user = (
        "CONFLICTS DETECTED (JSON):\n"
        + json.dumps(symbols, indent=1)
        + "\nAnswer with one decision per symbol."
    )
    return Prompt(system=RESOLUTION_SYSTEM_PROMPT, user=user)


def conservative(conflicts: Sequence[Conflict], why: str) -> list[Resolution]:
    """The no-model answer: per symbol, the most conservative fallback among its conflicts."""
    resolutions = []
    for symbol in dict.fromkeys(c.symbol for c in conflicts):
        mine = [c for c in conflicts if c.symbol == symbol]
        action = ResolutionAction.ABORT if any(c.fallback == "abort" for c in mine) else ResolutionAction.WAIT
        resolutions.append(
            Resolution(
                symbol=symbol,
                action=action,
                confidence=0.0,
                reasoning=why[:500],
                decided_by=FALLBACK_BY,
                conflicts=mine,
            )
        )
    return resolutions


DEGRADED_BY = "degraded-rules"
REGIME_CONFLICTS = frozenset({ConflictType.CHOPPY_REGIME, ConflictType.REGIME_CHANGE})


def triage(conflicts: Sequence[Conflict], level: DegradationLevel) -> tuple[list[Conflict], list[Resolution]]:
    """Which conflicts may go to a model at this degradation level, and the rule-based answer for the rest.

    NORMAL and REDUCED: all of them. LIMITED: only symbols with a regime conflict; a symbol with only a
    TA/sentiment conflict proceeds at confidence 0.5 (reference spec 3.17). EMERGENCY: none; every symbol
    gets the conservative action.
    """
    if level.rank <= DegradationLevel.REDUCED.rank:
        return list(conflicts), []
    if level is DegradationLevel.EMERGENCY:
        return [], conservative(conflicts, "degradation EMERGENCY: no model is asked; conservative action")
    to_model: list[Conflict] = []
    local: list[Resolution] = []
    for symbol in dict.fromkeys(c.symbol for c in conflicts):
        mine = [c for c in conflicts if c.symbol == symbol]
        if any(c.type in REGIME_CONFLICTS for c in mine):
            to_model += mine
            continue
        local.append(
            Resolution(
                symbol=symbol,
                action=ResolutionAction.PROCEED,
                confidence=0.5,
                reasoning="degradation LIMITED: only regime conflicts go to a model; this one proceeds",
                decided_by=DEGRADED_BY,
                conflicts=mine,
            )
        )
    return to_model, local


async def resolve(
    conflicts: Sequence[Conflict],
    signals: dict[str, TradingSignal],
    chain: Sequence[ProviderConfig],
    ask: Ask,
    s: ConflictSettings,
) -> list[Resolution]:
    """One resolution per conflicted symbol, within the budget; conservative when no model delivers."""
    if not conflicts:
        return []
    if not chain:
        return conservative(conflicts, "no LLM configured for conflict resolution: conservative action")
    start = time.perf_counter()
    prompt = resolution_prompt(conflicts, signals)
    cutoff = Cutoff()  # the requests a winner makes moot are "cancelled"; those the budget cuts, "timeout"
    with cutting(cutoff):
        race = asyncio.ensure_future(
            _hedged(prompt, list(chain), ask, s.resolution_budget_seconds * s.hedge_after_share)
        )
    done, _ = await asyncio.wait({race}, timeout=s.resolution_budget_seconds)
    if not done:
        cutoff.outcome = "timeout"
        race.cancel()
        await asyncio.gather(race, return_exceptions=True)
        return conservative(conflicts, f"no valid answer within the {s.resolution_budget_seconds:g} s budget")
    try:
        winner, answer = race.result()
    except LLMError as e:
        return conservative(conflicts, f"every model failed: {e}")
    latency = (time.perf_counter() - start) * 1000
    return _from_answer(conflicts, answer.value, winner.name, latency)


async def _hedged(
    prompt: Prompt, chain: list[ProviderConfig], ask: Ask, hedge_after: float
) -> tuple[ProviderConfig, Answer[ResolutionAnswer]]:
    """Race the chain: the next model starts once the running ones failed or exceeded `hedge_after`."""
    running: dict[asyncio.Future[Answer[ResolutionAnswer]], ProviderConfig] = {}
    waiting = list(chain)

    def start_next() -> None:
        config = waiting.pop(0)
        running[asyncio.ensure_future(ask(config, prompt))] = config

    last_error: LLMError | None = None
    start_next()
    try:
        while running:
            timeout = hedge_after if waiting else None
            done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                start_next()
                continue
            for task in done:
                config = running.pop(task)
                error = task.exception()
                if error is None:
                    return config, task.result()
                if not isinstance(error, LLMError):
                    raise error
                last_error = error
            if not running and waiting:
                start_next()
        if last_error is None:
            raise ValueError("conflict resolution needs at least one provider")
        raise last_error
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _from_answer(
    conflicts: Sequence[Conflict], answer: ResolutionAnswer, provider: str, latency_ms: float
) -> list[Resolution]:
    by_symbol = {d.symbol: d for d in answer.decisions}
    resolutions = []
    for symbol in dict.fromkeys(c.symbol for c in conflicts):
        mine = [c for c in conflicts if c.symbol == symbol]
        decision = by_symbol.get(symbol)
        if decision is None:
            resolutions += conservative(
                mine, f"{provider} gave no decision for {symbol}: conservative action"
            )
            continue
        resolutions.append(
            Resolution(
                symbol=symbol,
                action=decision.action,
                confidence=decision.confidence,
                reasoning=decision.reasoning or "(no reasoning given)",
                modifications=decision.modifications if decision.action is ResolutionAction.MODIFY else None,
                decided_by=provider,
                latency_ms=latency_ms,
                conflicts=mine,
            )
        )
    return resolutions


def apply_modifications(
    proposal: TradeProposal, modifications: Modifications, s: ConflictSettings
) -> tuple[TradeProposal | None, list[str]]:
    """The proposal changed within the bounds of 3.11, never larger or riskier; None means wait.

    Leverage is clamped to [min, max] and can only go down; size shrinks by a clamped percentage; an entry
    adjustment is clamped to +/- max percent: a paper market order cannot wait for a better price, so one
    that asks for a better price than the market (lower for a buy) means waiting, a worse one is moot.
    """
    notes = []
    update: dict[str, object] = {}
    if modifications.leverage is not None:
        leverage = min(max(modifications.leverage, s.min_leverage), s.max_leverage, proposal.leverage)
        update["leverage"] = leverage
        notes.append(f"leverage {proposal.leverage} -> {leverage}")
    if modifications.size_reduction_pct is not None:
        pct = min(max(modifications.size_reduction_pct, Decimal(0)), s.max_size_reduction_pct)
        size = max(Decimal(0), proposal.size_usd * (1 - pct / HUNDRED))
        if size <= 0:
            return None, [*notes, f"size reduced by {pct}% to nothing"]
        update["size_usd"] = size
        notes.append(f"size reduced by {pct}%")
    if modifications.entry_adjustment_pct is not None and proposal.intent is Intent.OPEN:
        pct = min(
            max(modifications.entry_adjustment_pct, -s.max_entry_adjustment_pct), s.max_entry_adjustment_pct
        )
        entry = max(proposal.entry_price * (1 + pct / HUNDRED), s.min_entry_price)
        better = entry < proposal.entry_price if proposal.side is Side.BUY else entry > proposal.entry_price
        if better:
            return None, [*notes, f"entry adjusted {pct}% to {entry:.8g}: better than the market, waiting"]
        notes.append(f"entry adjustment {pct}% is no better than the market: market order kept")
    return proposal.model_copy(update=update), notes


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
