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

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.agents.llm_analysis import regime_with_model, technical_with_model
from triplegain.agents.llm_decision import decide_with_models
from triplegain.agents.sentiment import assess_sentiment
from triplegain.aio import run_sync, shared_loop
from triplegain.analysis_memo import AnalysisMemo
from triplegain.backtest_metrics import Metrics, baselines, close_at, hourly_closes, measure
from triplegain.breaker_actions import manual_drawdown_reset
from triplegain.cycle import (
    Analysts,
    CyclePlan,
    Decider,
    PlainSteps,
    Resolver,
    assemble_cycle,
    cycle_id_for,
    decision_step,
    normalize_at,
)
from triplegain.cycle_types import AccountState, fresh_account, next_account
from triplegain.exposure import Ceilings, capped_portfolio
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.llm.replay import ReplayCaller
from triplegain.market.replay import ReplaySource
from triplegain.market.source import MarketDataSource
from triplegain.models.analysis import (
    AgentReport,
    RegimeAssessment,
    RegimeState,
    SentimentReport,
    TechnicalReport,
)
from triplegain.models.conflicts import Conflict, Resolution
from triplegain.models.cycle import CycleReport
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, OrderStatus
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import QUOTE, Portfolio
from triplegain.news import ReplayNews, headlines_for
from triplegain.rebalance import (
    Batch,
    RebalanceTrade,
    allocation,
    dca_batches,
    is_due,
    plan_rebalance,
    why_batch_skipped,
)
from triplegain.resolution import AGENT as RESOLUTION_AGENT
from triplegain.resolution import ResolutionAnswer, resolve
from triplegain.scoring import HORIZONS, Leaderboard, ModelScore, score_vote
from triplegain.settings import Settings

Progress = Callable[[int, int], None]
Vote = tuple[datetime, str, str, Action, float]  # cast at, symbol, model, action, price
POLICY_ACTOR = "backtest-policy"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


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
    notes: list[str] = Field(default_factory=list, description="ProviderBreakers, state changes, rebalances")
    decisions: dict[str, int] = Field(default_factory=dict, description="Who decided -> symbol-hours")
    replayed_answers: int = Field(0, description="Model answers found among the recordings")
    missing_answers: int = Field(
        0, description="Model prompts with no recorded answer (those models abstained)"
    )
    leaderboard: list[ModelScore] = Field(
        default_factory=list, description="Every voting model's votes scored on their 1/4/24 h outcome"
    )
    resume_after_halt: str = Field(
        "never", description="The declared policy after a halt (`backtest.resume_after_halt`)"
    )
    resumes: int = Field(0, description="Times the policy reset the breaker and resumed trading")
    sentiment_refreshes: int = Field(0, description="Live sentiment refreshes replayed at their times")
    hodl_bags: dict[str, Decimal] = Field(
        default_factory=dict, description="What the hodl bags hold at the end"
    )
    hodl_value_usd: Decimal = Field(Decimal(0), description="Their value at the last prices")

    @property
    def after_halt(self) -> str:
        """What the backtest did after a halt: its declared policy and how often it resumed."""
        if self.resume_after_halt == "never":
            return (
                "after a halt: never resumed (backtest.resume_after_halt: never, as live until reset by hand)"
            )
        return (
            f"after a halt: breaker reset and trading resumed {self.resume_after_halt} later "
            f"(backtest.resume_after_halt), {self.resumes} time(s)"
        )


@dataclass(frozen=True)
class LLMReplay:
    """Recorded answers to replay (see `triplegain.llm.replay`) and the models that gave them."""

    models: list[ProviderConfig]
    recordings: dict[str, dict[str, Any]]
    resolution_chain: list[ProviderConfig] = field(default_factory=list)
    technical: ProviderConfig | None = None
    regime: ProviderConfig | None = None
    sentiment_models: list[ProviderConfig] = field(default_factory=list)
    sentiment_times: list[datetime] = field(default_factory=list)  # when the live refreshes ran

    def recorded_models(self) -> list[str]:
        """The models whose recordings are loaded, each once: the voters, the resolution chain, the
        analysts, the sentiment models."""
        analysts = [a for a in (self.technical, self.regime) if a is not None]
        every = [*self.models, *self.resolution_chain, *analysts, *self.sentiment_models]
        return list(dict.fromkeys(m.model for m in every))


class SentimentReplay:
    """The sentiment refreshes of the live runs, replayed at their times with the recorded answers: the
    same headlines, the same prompts, so the same reports (a prompt never recorded gives what a failed
    refresh gives: neutral at the confidence floor). Each hour uses the newest report still valid."""

    def __init__(self, replay: LLMReplay, caller: ReplayCaller, settings: Settings) -> None:
        self.replay, self.caller, self.settings = replay, caller, settings
        self.pending = sorted(replay.sentiment_times)
        self.news = ReplayNews(
            settings.sentiment.news_dir / "headlines.csv" if settings.sentiment.news_dir else None
        )
        self.latest: dict[str, SentimentReport] = {}
        self.refreshes = 0

    def reports_at(self, at: datetime) -> dict[str, SentimentReport]:
        """Run the refreshes due by `at`; each symbol's newest report still valid at `at`."""
        while self.pending and self.pending[0] <= at:
            self._refresh(self.pending.pop(0))
        return {s: r for s, r in self.latest.items() if r.timestamp <= at < r.valid_until}

    def _refresh(self, when: datetime) -> None:
        s = self.settings
        for symbol in s.market.symbols:
            headlines = headlines_for(self.news, symbol, when, s.sentiment)
            gateway = _replay_gateway(self.caller)
            asked = assess_sentiment(
                gateway, self.replay.sentiment_models, symbol, headlines, when, s.sentiment
            )
            report = run_sync(asked)
            if report is not None:
                self.latest[symbol] = report
        self.refreshes += 1


def replay_setup(settings: Settings) -> LLMReplay:
    """The models whose recorded answers a backtest replays, from the settings (no recording loaded yet):
    the voters, the resolution chain, the technical and regime models, the sentiment models."""
    llm = settings.llm
    if not llm.decision_models and not llm.technical_model and not llm.regime_model:
        raise ValueError(
            "no llm.decision_models, llm.technical_model or llm.regime_model configured: nothing to replay"
        )
    known = llm.known_providers()
    named = [*llm.decision_models, *(m for m in (llm.technical_model, llm.regime_model) if m)]
    unknown = [m for m in named if m not in known]
    if unknown:
        raise ValueError(f"llm models {unknown} are not among the providers {sorted(known)}")
    return LLMReplay(
        models=[known[m] for m in llm.decision_models],
        recordings={},
        resolution_chain=[known[m] for m in llm.resolution_chain if m in known],
        technical=known[llm.technical_model] if llm.technical_model else None,
        regime=known[llm.regime_model] if llm.regime_model else None,
        sentiment_models=[known[m] for m in llm.sentiment_models if m in known],
    )


def run_backtest(
    source: MarketDataSource,
    start: datetime,
    end: datetime,
    settings: Settings,
    rebalancing: bool = True,
    progress: Progress | None = None,
    replay: LLMReplay | None = None,
    reuse_analyses: bool = False,
) -> BacktestResult:
    """Simulate every hour from `start` to `end` (inclusive, UTC) and measure it against the baselines.

    With `replay`, the models vote with their recorded answers; a decision with no recorded answer falls
    to the offline model. `decisions` in the result counts who decided. With `reuse_analyses`, the hours'
    analyses are kept for, and taken from, every other such backtest on `source` in this process
    (`triplegain.analysis_memo`): the same result, faster when settings vary outside the analysis, as an
    optimisation's trials do.
    """
    start, end = normalize_at(start), normalize_at(end)
    if end <= start:
        raise ValueError(f"the backtest ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    hours = int((end - start) / timedelta(hours=1)) + 1
    caller = ReplayCaller(replay.recordings) if replay else None
    steps = PlainSteps(source, settings, memo=AnalysisMemo(source, settings) if reuse_analyses else None)
    if replay is not None and caller is not None:
        steps = replace(
            steps,
            decider=_replaying_decider(replay, caller, settings) if replay.models else None,
            resolver=_replaying_resolver(replay, caller, settings),
            analysts=_replaying_analysts(replay, caller, settings),
        )
    sim = _Simulation(fresh_account(settings))
    news = (
        SentimentReplay(replay, caller, settings) if replay and caller and replay.sentiment_models else None
    )
    with shared_loop():
        for i in range(hours):
            at = start + timedelta(hours=i)
            sim.hour(at, steps, settings, rebalancing, news.reports_at(at) if news else {})
            if progress is not None:
                progress(i + 1, hours)
    result = sim.result(source, settings, start, end, rebalancing, caller)
    return result.model_copy(update={"sentiment_refreshes": news.refreshes if news else 0})


@dataclass
class _Simulation:
    """The account carried hour to hour, and what the result reports about the hours."""

    account: AccountState
    pending: list[Batch] = field(default_factory=list)
    last_plan: datetime | None = None
    times: list[datetime] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    exposure: list[float] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    board: Leaderboard = field(default_factory=Leaderboard)  # the votes scored so far, as running sums
    unscored: deque[Vote] = field(default_factory=deque)  # the last day's votes, oldest first
    trades: int = 0
    fees: Decimal = Decimal(0)
    skipped: int = 0
    marks: dict[str, Decimal] = field(default_factory=dict)  # each symbol's last known price
    halted_at: datetime | None = None
    resumes: int = 0

    def hour(
        self,
        at: datetime,
        steps: PlainSteps,
        settings: Settings,
        rebalancing: bool,
        sentiments: dict[str, SentimentReport] | None = None,
    ) -> None:
        """One hourly cycle with the DCA trades due (and the sentiment valid then), then the hourly
        portfolio check."""
        plan = CyclePlan(
            cycle_id_for(at),
            at,
            datetime.now(UTC),
            self.account,
            sentiments=sentiments or {},
            rebalance=self._due_trades(at),
        )
        run = assemble_cycle(plan, steps, settings)
        report, result = run.report, run.result
        self.account = next_account(self.account, result)
        self._count(at, report)
        self._score(steps.source, until=at)
        self._resume_after_halt(at, settings)
        self.notes += [f"{at:%Y-%m-%d %H:%M} {e}" for e in result.notes if _worth_keeping(e)]
        if rebalancing:
            self._check_portfolio(at, result.portfolio.prices, settings, result.ceilings)
        value = self._marked(result.portfolio)
        self.times.append(at)
        self.equity.append(float(value))
        self.exposure.append(
            float((value - result.portfolio.balances.get(QUOTE, Decimal(0))) / value) if value else 0
        )

    def _resume_after_halt(self, at: datetime, settings: Settings) -> None:
        """The declared policy after a halt: never, or after N hours the breaker reset (the peak restarts at
        the equity then) and the coordinator resumed, as an operator would."""
        if self.account.coordinator is not CoordinatorState.HALTED:
            self.halted_at = None
            return
        self.halted_at = self.halted_at or at
        hours = settings.backtest.resume_hours
        if hours is None or at - self.halted_at < timedelta(hours=hours):
            return
        equity = Decimal(repr(self.equity[-1])) if self.equity else None
        reset = manual_drawdown_reset(self.account, equity, POLICY_ACTOR, f"resume after {hours} h", at)
        risk = reset.risk if reset is not None else self.account.risk
        self.account = replace(
            self.account, risk=risk, coordinator=CoordinatorState.RUNNING, state_set_by=POLICY_ACTOR
        )
        self.halted_at, self.resumes = None, self.resumes + 1
        self.notes.append(f"{at:%Y-%m-%d %H:%M} resumed by the backtest policy after {hours} h halted")

    def _marked(self, portfolio: Portfolio) -> Decimal:
        """The equity with every holding at its last known price: an hour missing a symbol's candle (an
        exchange outage) must not value what is held in it at zero."""
        self.marks.update(portfolio.prices)
        return portfolio.model_copy(update={"prices": dict(self.marks)}).equity

    def _due_trades(self, at: datetime) -> list[RebalanceTrade]:
        """The trades of the batches due now; a batch due while the coordinator is stopped is dropped."""
        due = [b for b in self.pending if is_due(b.scheduled_at, at)]
        self.pending = [b for b in self.pending if not is_due(b.scheduled_at, at)]
        state = self.account.coordinator
        return [t for b in due if why_batch_skipped(b.scheduled_at, state, state) is None for t in b.trades]

    def _count(self, at: datetime, report: CycleReport) -> None:
        """Who decided, the votes to score, the fills and their fees, skipped hours."""
        if all(o.error is not None for o in report.symbols):
            self.skipped += 1
        for outcome in report.symbols:
            if outcome.signal is not None:
                by = outcome.signal.decided_by
                self.decisions[by] = self.decisions.get(by, 0) + 1
                if outcome.price is not None:
                    self.unscored.extend(
                        (at, outcome.symbol, v.model, v.action, float(outcome.price))
                        for v in outcome.signal.model_votes
                        if not v.abstained
                    )
            for execution in outcome.executions():
                if execution.order.status is OrderStatus.FILLED and execution.fill is not None:
                    self.trades += 1
                    self.fees += execution.fill.fee_in_quote

    def _score(self, source: MarketDataSource, until: datetime | None = None) -> None:
        """Score the votes whose every horizon has closed by `until` (all of them when None), in the order
        they were cast: no vote is kept longer than its longest horizon, and no price after `until` is read
        (the run reads nothing of the future; the votes still open when it ends are scored after it)."""
        latest = timedelta(hours=max(HORIZONS))

        def later(symbol: str, at: datetime) -> float | None:
            return close_at(source, symbol, at)

        while self.unscored and (until is None or self.unscored[0][0] + latest <= until):
            self.board.add(score_vote(*self.unscored.popleft(), later))

    def _check_portfolio(
        self, at: datetime, prices: dict[str, Decimal], settings: Settings, limits: Ceilings | None
    ) -> None:
        """The hourly portfolio check, aiming at the cycle's ceilings: a new plan supersedes pending ones."""
        plan = _portfolio_check(self.account, prices, settings, at, self.last_plan, limits)
        if plan is None:
            return
        self.pending, self.last_plan = plan, at
        total = sum((t.amount_usd for b in plan for t in b.trades), Decimal(0))
        self.notes.append(f"{at:%Y-%m-%d %H:%M} rebalance planned: {total:.2f} USD in {len(plan)} batch(es)")

    def _metrics(self) -> Metrics:
        return measure(self.equity).model_copy(
            update={
                "trades": self.trades,
                "fees_paid": float(self.fees),
                "exposure_pct": float(np.mean(self.exposure) * 100),
            }
        )

    def result(
        self,
        source: MarketDataSource,
        settings: Settings,
        start: datetime,
        end: datetime,
        rebalancing: bool,
        caller: ReplayCaller | None,
    ) -> BacktestResult:
        """The metrics of the curve against the baselines, and the leaderboard of the votes."""
        self._score(source)
        closes = {s: hourly_closes(source, s, self.times) for s in settings.market.symbols}
        runs = baselines(closes, settings, float(sum(settings.broker.initial_balances.values(), Decimal(0))))
        return BacktestResult(
            leaderboard=self.board.rows(),
            decisions=self.decisions,
            replayed_answers=caller.hits if caller else 0,
            missing_answers=caller.misses if caller else 0,
            start=start,
            end=end,
            symbols=list(settings.market.symbols),
            source=source.name,
            decided_by=list(self.decisions) or ["none"],
            rebalancing=rebalancing,
            hours=len(self.times),
            metrics=self._metrics(),
            baselines={name: run.metrics() for name, run in runs.items()},
            times=self.times,
            equity=self.equity,
            baseline_equity={name: run.curve for name, run in runs.items()},
            skipped_hours=self.skipped,
            notes=self.notes,
            resume_after_halt=settings.backtest.resume_after_halt,
            resumes=self.resumes,
            hodl_bags=self.account.hodl.amounts(),
            hodl_value_usd=self.account.hodl.value_usd(self.marks).quantize(Decimal("0.01")),
        )


def _replaying_decider(replay: LLMReplay, caller: ReplayCaller, settings: Settings) -> Decider:
    """The models vote with recorded answers; when none of them has one, the offline model decides."""

    def decide(
        snapshot: MarketSnapshot,
        technical: TechnicalReport,
        regime: RegimeAssessment,
        reports: dict[str, AgentReport],
        sentiment: SentimentReport | None,
    ) -> TradingSignal:
        gateway = _replay_gateway(caller)
        asked = decide_with_models(
            snapshot, technical, regime, settings, gateway, replay.models, sentiment, reports
        )
        signal = run_sync(asked)
        if all(v.abstained for v in signal.model_votes):
            return decision_step(snapshot, technical, regime, settings)
        return signal

    return decide


def _replaying_analysts(replay: LLMReplay, caller: ReplayCaller, settings: Settings) -> Analysts | None:
    """The technical and regime models with recorded answers; the offline analysis where none is."""
    if replay.technical is None and replay.regime is None:
        return None
    technical_config, regime_config = replay.technical, replay.regime

    def technical(snapshot: MarketSnapshot, offline: TechnicalReport) -> TechnicalReport:
        assert technical_config is not None
        gateway = _replay_gateway(caller)
        return run_sync(
            technical_with_model(snapshot, offline, settings, gateway, technical_config, replaying=True)
        )

    def regime(
        snapshot: MarketSnapshot,
        tech: TechnicalReport,
        previous: RegimeState | None,
        offline: RegimeAssessment,
    ) -> RegimeAssessment:
        assert regime_config is not None
        gateway = _replay_gateway(caller)
        return run_sync(
            regime_with_model(
                snapshot, tech, previous, offline, settings, gateway, regime_config, replaying=True
            )
        )

    return Analysts(technical if technical_config else None, regime if regime_config else None)


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
    return LLMGateway(ProviderBreakers(never_open, {}), Budget(unlimited, unlimited), call=caller)


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
    account: AccountState,
    prices: dict[str, Decimal],
    settings: Settings,
    at: datetime,
    last: datetime | None,
    limits: Ceilings | None,
) -> list[Batch] | None:
    """The hourly portfolio check, as the portfolio-check flow makes it: a new plan, or None."""
    portfolio = capped_portfolio(settings.portfolio, limits)
    try:
        current = allocation(account.balances, prices, account.positions, portfolio)
    except ValueError:  # a target asset without a price this hour: no check
        return None
    decision = plan_rebalance(account.coordinator, current, portfolio, settings.broker, at, last)
    if decision.action != "rebalance":
        return None
    return dca_batches(decision.trades, portfolio, at + timedelta(hours=1))


def default_window(source: MarketDataSource, symbols: list[str], days: int = 30) -> tuple[datetime, datetime]:
    """The last `days` of the source's data (a convenient default for a first backtest)."""
    end = source.end(symbols) if isinstance(source, ReplaySource) else normalize_at(datetime.now(UTC))
    return end - timedelta(days=days), end
