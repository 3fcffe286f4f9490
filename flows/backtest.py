"""The backtest as a Prefect flow: the same `run_backtest`, its results as artifacts in the Prefect UI.

from flows.backtest import backtest
result = backtest(start="2024-06-01T00:00Z", end="2024-06-30T23:00Z")
result.metrics.total_return_pct, result.baselines["buy_and_hold"].total_return_pct
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.settings import load_run_settings
from triplegain.backtest import BacktestResult, default_window, run_backtest
from triplegain.cycle import parse_time
from triplegain.market import ReplaySource

FLOW_NAME = "backtest"
METRICS_KEY = "backtest-metrics"
REPORT_KEY = "backtest-report"
LEADERBOARD_KEY = "backtest-leaderboard"


@flow(name=FLOW_NAME, log_prints=False)
def backtest(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    rebalancing: bool = True,
    config_file: str | None = None,
) -> BacktestResult:
    """Replay history through the trading code (default: the last 30 days of the data); returns the result."""
    logger = get_run_logger()
    market: dict[str, object] = {"source": "replay"}
    if symbols:
        market["symbols"] = symbols
    if data_dir:
        market["data_dir"] = data_dir
    settings = load_run_settings(config_file, market=market)
    source = ReplaySource(settings.market.data_dir)
    first, last = default_window(source, settings.market.symbols)
    first = parse_time(start) if start is not None else first
    last = parse_time(end) if end is not None else last
    step = max(1, int((last - first).total_seconds() // 3600) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            logger.info("backtest: %d/%d hours", done, total)

    result = run_backtest(source, first, last, settings, rebalancing, progress)
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
    return result


def render(result: BacktestResult) -> str:
    """The backtest as markdown: metrics against the baselines, then its notable events."""
    rows = {f"TripleGain ({', '.join(result.decided_by)})": result.metrics, **result.baselines}
    lines = [
        f"# Backtest {', '.join(result.symbols)}",
        f"{result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC, {result.hours} hourly cycles on "
        f"`{result.source}`, rebalancing {'on' if result.rebalancing else 'off'}.",
        "",
        "| strategy | return % | annualised % | max drawdown % | Sharpe | Sortino | trades | fees |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m.total_return_pct:+.2f} | {m.annualised_return_pct:+.1f} | "
            f"{m.max_drawdown_pct:.2f} | {m.sharpe:.2f} | {m.sortino:.2f} | {m.trades} | {m.fees_paid:.2f} |"
        )
    if result.events:
        lines += ["", "## Events", ""] + [f"- {e}" for e in result.events[:50]]
    return "\n".join(lines) + "\n"
