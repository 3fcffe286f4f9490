"""The backtest as a Prefect flow; its setup, shared with `triplegain backtest`, is `flows.backtest_setup`.

The same `run_backtest` either way; the flow publishes its results as artifacts in the Prefect UI.

    from flows.backtest import backtest
    result = backtest(start="2024-06-01T00:00Z", end="2024-06-30T23:00Z")
    result.metrics.total_return_pct, result.baselines["buy_and_hold"].total_return_pct
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.backtest_setup import BacktestSetup, prepare_backtest
from flows.runs import inline_png
from flows.tracking import name_run
from triplegain.backtest import BacktestResult

FLOW_NAME = "backtest"
METRICS_KEY = "backtest-metrics"
REPORT_KEY = "backtest-report"
LEADERBOARD_KEY = "backtest-leaderboard"
PLOT_KEY = "backtest-plot"
PROGRESS_KEY = "backtest-progress"
PROGRESS_UPDATES = 20

__all__ = ["BacktestSetup", "backtest", "prepare_backtest", "publish_artifacts", "render"]


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
    name_run(f"backtest-{setup.start:%Y%m%dT%H%MZ}-{setup.end:%Y%m%dT%H%MZ}")
    hours = int((setup.end - setup.start).total_seconds() // 3600) + 1
    step = max(1, hours // PROGRESS_UPDATES)
    tracker = create_progress_artifact(
        0.0,
        key=PROGRESS_KEY,
        description=f"backtest {setup.start:%Y-%m-%d %H:%M} .. {setup.end:%Y-%m-%d %H:%M}",
    )

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            logger.info("backtest: %d/%d hours", done, total)
            update_progress_artifact(tracker, 100.0 * done / max(total, 1))

    result = setup.run(rebalancing, progress)
    publish_artifacts(result)
    return result


def publish_artifacts(result: BacktestResult) -> None:
    """Metrics against the baselines, the leaderboard, and the markdown report, in the Prefect UI."""
    rows = {f"TripleGain ({', '.join(result.decided_by)})": result.metrics, **result.baselines}
    create_table_artifact(
        key=METRICS_KEY,
        table=[{"strategy": name, **_rounded(m.model_dump())} for name, m in rows.items()],
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
    create_markdown_artifact(
        key=PLOT_KEY, markdown=picture(result), description="equity, baselines, drawdown"
    )


def picture(result: BacktestResult) -> str:
    """The backtest's plot as markdown, the PNG inline (a data URI): the UI shows it with no file server."""
    from triplegain.backtest_plot import plot_backtest

    with tempfile.TemporaryDirectory() as directory:
        png = plot_backtest(result, Path(directory) / "backtest.png").read_bytes()
    return inline_png(
        f"Backtest {', '.join(result.symbols)}", "equity against the baselines, drawdown beneath", png
    )


def _rounded(row: dict[str, object]) -> dict[str, object]:
    """Figures as a table shows them: to the cent, or two decimals (the JSON result keeps every digit)."""
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}


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
