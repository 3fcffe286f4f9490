"""The backtest as a Prefect flow, and the one setup that the flow and `triplegain backtest` share.

The same `run_backtest` either way; the flow publishes its results as artifacts in the Prefect UI.

    from flows.backtest import backtest
    result = backtest(start="2024-06-01T00:00Z", end="2024-06-30T23:00Z")
    result.metrics.total_return_pct, result.baselines["buy_and_hold"].total_return_pct
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.settings import load_run_settings
from tasks.storage import engine_for
from triplegain.backtest import (
    BacktestResult,
    LLMReplay,
    Progress,
    default_window,
    replay_setup,
    run_backtest,
)
from triplegain.cycle import parse_time
from triplegain.market import ReplaySource
from triplegain.settings import Settings
from triplegain.storage import unit_of_work
from triplegain.storage.llm_calls import load_recordings
from triplegain.storage.sentiment import refresh_times

FLOW_NAME = "backtest"
METRICS_KEY = "backtest-metrics"
REPORT_KEY = "backtest-report"
LEADERBOARD_KEY = "backtest-leaderboard"


@dataclass(frozen=True)
class BacktestSetup:
    """Everything a backtest needs: settings on replayed data, the window, recorded answers to replay."""

    settings: Settings
    source: ReplaySource
    start: datetime
    end: datetime
    replay: LLMReplay | None = None

    def run(self, rebalancing: bool = True, progress: Progress | None = None) -> BacktestResult:
        """Run the backtest this setup describes."""
        return run_backtest(
            self.source, self.start, self.end, self.settings, rebalancing, progress, self.replay
        )


def prepare_backtest(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    config_file: str | None = None,
    replay_llm: bool = False,
) -> BacktestSetup:
    """Settings (replay source), the window (default: the last 30 days of the data) and, with `replay_llm`,
    the decision models' answers recorded in the project database."""
    market: dict[str, Any] = {"source": "replay"}
    if data_dir:
        market["data_dir"] = data_dir
    settings = load_run_settings(config_file, symbols, market=market)
    source = ReplaySource(settings.market.data_dir)
    first, last = default_window(source, settings.market.symbols)
    first = parse_time(start) if start is not None else first
    last = parse_time(end) if end is not None else last
    replay = None
    if replay_llm:
        wanted = replay_setup(settings)
        with unit_of_work(engine_for(settings)) as session:
            recordings = load_recordings(session, wanted.recorded_models())
            times = refresh_times(session, first, last) if wanted.sentiment_models else []
        replay = replace(wanted, recordings=recordings, sentiment_times=times)
    return BacktestSetup(settings, source, first, last, replay)


@flow(name=FLOW_NAME, log_prints=False)
def backtest(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    rebalancing: bool = True,
    config_file: str | None = None,
    replay_llm: bool = False,
) -> BacktestResult:
    """Replay history through the trading code (default: the last 30 days of the data); returns the result."""
    logger = get_run_logger()
    setup = prepare_backtest(start, end, symbols, data_dir, config_file, replay_llm)
    step = max(1, int((setup.end - setup.start).total_seconds() // 3600) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            logger.info("backtest: %d/%d hours", done, total)

    result = setup.run(rebalancing, progress)
    publish_artifacts(result)
    return result


def publish_artifacts(result: BacktestResult) -> None:
    """Metrics against the baselines, the leaderboard, and the markdown report, in the Prefect UI."""
    rows = {f"TripleGain ({', '.join(result.decided_by)})": result.metrics, **result.baselines}
    create_table_artifact(
        key=METRICS_KEY,
        table=[{"strategy": name, **m.model_dump()} for name, m in rows.items()],
        description=f"{result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC, {result.hours} h",
    )
    create_table_artifact(
        key=LEADERBOARD_KEY,
        table=[
            {"model": r.model, "votes": r.votes, "scored": r.scored, "accuracy_pct": r.accuracy_pct}
            | {f"mean_outcome_{h}h_pct": m for h, m in r.mean_outcome_pct.items()}
            for r in result.leaderboard
        ],
        description="models shadow-scored on their votes",
    )
    create_markdown_artifact(key=REPORT_KEY, markdown=render(result), description=", ".join(result.symbols))


def render(result: BacktestResult) -> str:
    """The backtest as markdown: metrics against the baselines, then its notable events."""
    rows = {f"TripleGain ({', '.join(result.decided_by)})": result.metrics, **result.baselines}
    lines = [
        f"# Backtest {', '.join(result.symbols)}",
        f"{result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC, {result.hours} hourly cycles on "
        f"`{result.source}`, rebalancing {'on' if result.rebalancing else 'off'}.",
        "",
        result.after_halt,
        "",
        *(
            [f"Hodl bags at the end: {result.hodl_bags} ({result.hodl_value_usd} USD, never sold).", ""]
            if result.hodl_bags
            else []
        ),
        "| strategy | return % | annualised % | max drawdown % | Sharpe | Sortino | trades | fees |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m.total_return_pct:+.2f} | {m.annualised_return_pct:+.1f} | "
            f"{m.max_drawdown_pct:.2f} | {m.sharpe:.2f} | {m.sortino:.2f} | {m.trades} | {m.fees_paid:.2f} |"
        )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {e}" for e in result.notes[:50]]
    return "\n".join(lines) + "\n"
