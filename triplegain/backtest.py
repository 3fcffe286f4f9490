"""Backtesting with the code that trades: `run_cycle` hour by hour over history, no Prefect per step.

Each hour runs the same domain pipeline as a live cycle (agents, votes, coordinator, risk engine with its
circuit breakers, paper broker), carrying the account from one hour to the next with `next_account`. After
each cycle the portfolio check runs as it does hourly in production (`triplegain.rebalance`: drift, interval,
cost rule); its DCA batches are made by the cycle of the hour they fall due (skipped, like live, while the
coordinator is not RUNNING). Nothing later than a cycle's time is read: the replay source only returns
candles that closed by then (tests wrap the source to prove it).

The result holds the strategy's equity curve and metrics beside two baselines on the same prices: buying the
target allocation and holding it, and the target allocation rebalanced by the drift threshold alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.agents.llm_decision import decide_with_models
from triplegain.aio import run_sync
from triplegain.coordinator import AccountState, fresh_account, next_account
from triplegain.cycle import (
    Decider,
    Resolver,
    decision_step,
    normalize_at,
    resolve_without_models,
    run_cycle,
)
from triplegain.llm.breaker import BreakerPolicy, Breakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.llm.replay import ReplayCaller
from triplegain.market.replay import ReplaySource
from triplegain.market.source import MarketDataSource
from triplegain.models.analysis import RegimeAssessment, TechnicalReport
from triplegain.models.conflicts import Conflict, Resolution
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, OrderStatus
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import QUOTE
from triplegain.rebalance import Batch, allocation, dca_batches, decide
from triplegain.resolution import AGENT as RESOLUTION_AGENT
from triplegain.resolution import ResolutionAnswer, resolve
from triplegain.scoring import ModelScore, leaderboard, score_vote
from triplegain.settings import DEFAULT_PROVIDERS, Settings

HOURS_PER_YEAR = 24 * 365
Progress = Callable[[int, int], None]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Metrics(BaseModel):
    """Performance of one equity curve of hourly marks."""

    model_config = _FROZEN

    start_equity: float
    end_equity: float
    total_return_pct: float
    annualised_return_pct: float
    max_drawdown_pct: float
    sharpe: float = Field(description="Mean hourly return over its deviation, annualised (risk-free rate 0)")
    sortino: float = Field(description="Mean hourly return over its downside deviation, annualised")
    trades: int = 0
    fees_paid: float = 0.0
    exposure_pct: float = Field(0.0, description="Mean share of equity held in assets other than USDT")


class BacktestResult(BaseModel):
    """A backtest's figures, curves and what happened along the way."""

    model_config = _FROZEN

    start: AwareDatetime
    end: AwareDatetime
    symbols: list[str]
    source: str
    decided_by: list[str] = Field(description="Who decided, e.g. offline-deterministic")
    rebalancing: bool
    hours: int
    metrics: Metrics
    baselines: dict[str, Metrics]
    times: list[AwareDatetime]
    equity: list[float]
    baseline_equity: dict[str, list[float]]
    skipped_hours: int = Field(0, description="Hours no symbol could be analysed (data gaps)")
    events: list[str] = Field(default_factory=list, description="Breakers, state changes, rebalances")
    decisions: dict[str, int] = Field(default_factory=dict, description="Who decided -> symbol-hours")
    replayed_answers: int = Field(0, description="Model answers found among the recordings")
    missing_answers: int = Field(
        0, description="Model prompts with no recorded answer (those models abstained)"
    )
    leaderboard: list[ModelScore] = Field(
        default_factory=list, description="Every voting model's votes scored on their 1/4/24 h outcome"
    )


@dataclass(frozen=True)
class LLMReplay:
    """Recorded answers to replay (see `triplegain.llm.replay`) and the models that gave them."""

    models: list[ProviderConfig]
    recordings: dict[str, dict[str, Any]]
    resolution_chain: list[ProviderConfig] = field(default_factory=list)


def replay_models(settings: Settings) -> list[ProviderConfig]:
    """The configured voting models (`llm.decision_models`), whose recorded answers a backtest replays."""
    if not settings.llm.decision_models:
        raise ValueError("no llm.decision_models configured: there is nothing to replay")
    known = {**DEFAULT_PROVIDERS, **settings.llm.providers}
    unknown = [m for m in settings.llm.decision_models if m not in known]
    if unknown:
        raise ValueError(f"llm.decision_models {unknown} are not among the providers {sorted(known)}")
    return [known[m] for m in settings.llm.decision_models]


def replay_resolution_chain(settings: Settings) -> list[ProviderConfig]:
    """The conflict-resolution chain (`llm.resolution_chain`) among the known providers."""
    known = {**DEFAULT_PROVIDERS, **settings.llm.providers}
    return [known[m] for m in settings.llm.resolution_chain if m in known]


def run_backtest(
    source: MarketDataSource,
    start: datetime,
    end: datetime,
    settings: Settings,
    rebalancing: bool = True,
    progress: Progress | None = None,
    replay: LLMReplay | None = None,
) -> BacktestResult:
    """Simulate every hour from `start` to `end` (inclusive, UTC) and measure it against the baselines.

    With `replay`, the models vote with their recorded answers; a decision with no recorded answer falls
    to the offline model. `decisions` in the result counts who decided.
    """
    start, end = normalize_at(start), normalize_at(end)
    if end <= start:
        raise ValueError(f"the backtest ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    hours = int((end - start) / timedelta(hours=1)) + 1
    account = fresh_account(settings)
    caller = ReplayCaller(replay.recordings) if replay else None
    decider = _replaying_decider(replay, caller, settings) if replay and caller else None
    resolver = _replaying_resolver(replay, caller, settings) if replay and caller else resolve_without_models
    decisions: dict[str, int] = {}
    pending: list[Batch] = []
    last_plan: datetime | None = None
    times: list[datetime] = []
    equity: list[float] = []
    exposure: list[float] = []
    decided: dict[str, None] = {}
    events: list[str] = []
    trades, fees, skipped = 0, Decimal(0), 0
    votes: list[tuple[datetime, str, str, Action, float]] = []
    for i in range(hours):
        at = start + timedelta(hours=i)
        due = [b for b in pending if b.scheduled_at <= at]
        pending = [b for b in pending if b.scheduled_at > at]
        report, result = run_cycle(
            source, account, at, settings, [t for b in due for t in b.trades], decider, resolver
        )
        if all(o.error is not None for o in report.symbols):
            skipped += 1
        account = next_account(account, result)
        for outcome in report.symbols:
            if outcome.signal is not None:
                decided[outcome.signal.decided_by] = None
                decisions[outcome.signal.decided_by] = decisions.get(outcome.signal.decided_by, 0) + 1
                if outcome.price is not None:
                    votes += [
                        (at, outcome.symbol, v.model, v.action, float(outcome.price))
                        for v in outcome.signal.model_votes
                        if not v.abstained
                    ]
            for execution in [*outcome.exits, *([outcome.execution] if outcome.execution else [])]:
                if execution.order.status is OrderStatus.FILLED and execution.fill is not None:
                    trades += 1
                    fees += execution.fill.fee
        events += [f"{at:%Y-%m-%d %H:%M} {e}" for e in result.events if _worth_keeping(e)]
        if rebalancing and account.coordinator is CoordinatorState.RUNNING:
            plan = _portfolio_check(account, result.portfolio.prices, settings, at, last_plan)
            if plan is not None:
                pending, last_plan = plan, at
                total = sum((t.amount_usd for b in plan for t in b.trades), Decimal(0))
                events.append(
                    f"{at:%Y-%m-%d %H:%M} rebalance planned: {total:.2f} USD in {len(plan)} batch(es)"
                )
        value = result.portfolio.equity
        times.append(at)
        equity.append(float(value))
        exposure.append(
            float((value - result.portfolio.balances.get(QUOTE, Decimal(0))) / value) if value else 0
        )
        if progress is not None:
            progress(i + 1, hours)
    metrics = measure(equity).model_copy(
        update={"trades": trades, "fees_paid": float(fees), "exposure_pct": float(np.mean(exposure) * 100)}
    )
    closes = {s: hourly_closes(source, s, times) for s in settings.market.symbols}
    initial = float(sum(settings.broker.initial_balances.values(), Decimal(0)))
    curves = baselines(closes, settings, initial)
    scored = [score_vote(*vote, lambda symbol, t: close_at(source, symbol, t)) for vote in votes]
    return BacktestResult(
        leaderboard=leaderboard(scored),
        decisions=decisions,
        replayed_answers=caller.hits if caller else 0,
        missing_answers=caller.misses if caller else 0,
        start=start,
        end=end,
        symbols=list(settings.market.symbols),
        source=source.name,
        decided_by=list(decided) or ["none"],
        rebalancing=rebalancing,
        hours=hours,
        metrics=metrics,
        baselines={name: measure(curve) for name, curve in curves.items()},
        times=times,
        equity=equity,
        baseline_equity=curves,
        skipped_hours=skipped,
        events=events,
    )


def _replaying_decider(replay: LLMReplay, caller: ReplayCaller, settings: Settings) -> Decider:
    """The models vote with recorded answers; when none of them has one, the offline model decides."""

    def decide(
        snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment
    ) -> TradingSignal:
        gateway = _replay_gateway(caller)
        signal = run_sync(decide_with_models(snapshot, technical, regime, settings, gateway, replay.models))
        if all(v.abstained for v in signal.model_votes):
            return decision_step(snapshot, technical, regime, settings)
        return signal

    return decide


def _replaying_resolver(replay: LLMReplay, caller: ReplayCaller, settings: Settings) -> Resolver:
    """Conflicts resolved by the recorded answers of the resolution chain; conservative without one."""

    def resolve_recorded(conflicts: list[Conflict], signals: dict[str, TradingSignal]) -> list[Resolution]:
        gateway = _replay_gateway(caller)

        async def ask(config: ProviderConfig, prompt: Prompt) -> Answer[ResolutionAnswer]:
            return await gateway.ask(RESOLUTION_AGENT, [config], prompt, ResolutionAnswer)

        return run_sync(resolve(conflicts, signals, replay.resolution_chain, ask, settings.conflicts))

    return resolve_recorded


def _replay_gateway(caller: ReplayCaller) -> LLMGateway:
    """A gateway that only replays: no budget to spend, and a missing recording is no provider outage."""
    unlimited = Decimal("1e12")
    never_open = BreakerPolicy(failure_threshold=10**9)
    return LLMGateway(Breakers(never_open, {}), Budget(unlimited, unlimited), call=caller)


def _worth_keeping(event: str) -> bool:
    """Breaker trips and resets, coordinator state changes, degradation changes, order-error cooldowns."""
    return (
        "breaker tripped" in event
        or "breaker reset" in event
        or (event.startswith("coordinator ") and " -> " in event)
        or event.startswith("degradation_")
        or "order errors in a row" in event
    )


def _portfolio_check(
    account: AccountState, prices: dict[str, Decimal], settings: Settings, at: datetime, last: datetime | None
) -> list[Batch] | None:
    """The hourly portfolio check: a new plan (superseding any pending batches), or None."""
    try:
        current = allocation(account.balances, prices, account.positions, settings.portfolio)
    except ValueError:  # a target asset without a price this hour: no check
        return None
    decision = decide(current, settings.portfolio, settings.broker, at, last)
    if decision.action != "rebalance":
        return None
    return dca_batches(decision.trades, settings.portfolio, at + timedelta(hours=1))


def measure(equity: Sequence[float]) -> Metrics:
    """Return, drawdown, Sharpe and Sortino of an hourly equity curve."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0 or values[0] <= 0:
        raise ValueError("an equity curve needs at least one positive value")
    total = values[-1] / values[0] - 1
    years = max(values.size - 1, 1) / HOURS_PER_YEAR
    # Compounded to a year; capped so a few hours' return cannot overflow (it means little there anyway).
    annualised = math.expm1(min(math.log(values[-1] / values[0]) / years, 50.0)) if values[-1] > 0 else -1.0
    peaks = np.maximum.accumulate(values)
    drawdown = float(np.max((peaks - values) / peaks)) if values.size else 0.0
    returns = np.diff(values) / values[:-1] if values.size > 1 else np.zeros(1)
    scale = math.sqrt(HOURS_PER_YEAR)
    std = float(np.std(returns))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0) ** 2)))
    mean = float(np.mean(returns))
    return Metrics(
        start_equity=float(values[0]),
        end_equity=float(values[-1]),
        total_return_pct=float(total * 100),
        annualised_return_pct=float(annualised * 100),
        max_drawdown_pct=drawdown * 100,
        sharpe=mean / std * scale if std > 0 else 0.0,
        sortino=mean / downside * scale if downside > 0 else 0.0,
    )


def hourly_closes(source: MarketDataSource, symbol: str, times: Sequence[datetime]) -> np.ndarray:
    """The close of the newest candle closed by each time (the price a cycle at that time sees); NaN before
    the first."""
    closes = np.full(len(times), np.nan)
    for i, at in enumerate(times):
        candles = source.candles(symbol, at, 1)
        if len(candles):
            closes[i] = float(candles.close[-1])
    return closes


def close_at(source: MarketDataSource, symbol: str, at: datetime) -> float | None:
    """The close of the candle that closed exactly at `at`, if any (read for scoring, after the run)."""
    candles = source.candles(symbol, at, 1)
    if not len(candles) or candles.open_time(-1) + timedelta(hours=1) != at:
        return None
    return float(candles.close[-1])


def baselines(closes: dict[str, np.ndarray], settings: Settings, initial: float) -> dict[str, list[float]]:
    """Buy-and-hold of the target allocation, and the same rebalanced when it drifts past the threshold.

    Both buy at the first hour's closes and pay the broker's fee on every traded notional; assets without a
    close at an hour keep their last one.
    """
    targets = {a: float(p) / 100 for a, p in settings.portfolio.target_pct.items()}
    fee = float(settings.broker.fee_pct) / 100
    threshold = float(settings.portfolio.drift_threshold_pct) / 100
    assets = [a for a in targets if a != QUOTE and f"{a}/{QUOTE}" in closes]
    prices = {a: _filled(closes[f"{a}/{QUOTE}"]) for a in assets}
    n = len(next(iter(prices.values()))) if prices else 0
    curves = {}
    for name, rebalance in (("buy_and_hold", False), ("drift_rebalanced", True)):
        cash = initial * targets.get(QUOTE, 0.0) + initial * sum(
            targets[a] for a in assets if a not in prices
        )
        units = {}
        for a in assets:
            spend = initial * targets[a]
            units[a] = spend * (1 - fee) / prices[a][0]
        curve = []
        for i in range(n):
            value = cash + sum(units[a] * prices[a][i] for a in assets)
            if rebalance and value > 0:
                drift = max(
                    [abs(units[a] * prices[a][i] / value - targets[a]) for a in assets]
                    + [abs(cash / value - targets.get(QUOTE, 0.0))]
                )
                if drift >= threshold:
                    for a in assets:
                        wanted = value * targets[a]
                        held = units[a] * prices[a][i]
                        traded = abs(wanted - held)
                        cash -= (wanted - held) + traded * fee
                        units[a] = wanted / prices[a][i]
                    value = cash + sum(units[a] * prices[a][i] for a in assets)
            curve.append(value)
        curves[name] = curve
    return curves


def _filled(values: np.ndarray) -> np.ndarray:
    """Carry the last known close forward (and the first one backward) over missing hours."""
    out = values.copy()
    if np.all(np.isnan(out)):
        raise ValueError("no close at all for a baseline asset in the backtest window")
    first = int(np.flatnonzero(~np.isnan(out))[0])
    out[:first] = out[first]
    for i in range(1, out.size):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def default_window(source: MarketDataSource, symbols: list[str], days: int = 30) -> tuple[datetime, datetime]:
    """The last `days` of the source's data (a convenient default for a first backtest)."""
    end = source.end(symbols) if isinstance(source, ReplaySource) else normalize_at(datetime.now(UTC))
    return end - timedelta(days=days), end
