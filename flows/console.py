"""How the command line shows things: reports, status, backtests, leaderboards and plans, with rich."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the CLI starts fast: the domain types are only needed by the type checker
    from collections.abc import Sequence

    from triplegain.backtest import BacktestResult
    from triplegain.control import CoordinatorStatus
    from triplegain.models.cycle import CycleReport
    from triplegain.optimize import OptimizationResult
    from triplegain.rebalance import PlanRecord
    from triplegain.scoring import ModelScore

# Piped output (logs, CI) gets a fixed width so the report table does not wrap into tall cells.
out = Console() if sys.stdout.isatty() else Console(width=140)
err = Console(stderr=True)
BACKTEST_COLUMNS = (
    "",
    "return %",
    "annualised %",
    "max drawdown %",
    "Sharpe",
    "Sortino",
    "trades",
    "fees",
    "exposure %",
)


NOTES_SHOWN = 10


def amount(asset: str, value: Decimal) -> str:
    """A balance as a trader reads it: the quote currency to the cent, a coin to 8 decimals, no
    trailing zeros (`USDT 8996.77`, `BTC 0.01593`)."""
    places = Decimal("0.01") if asset == "USDT" else Decimal("0.00000001")
    text = f"{value.quantize(places):f}"
    return text.rstrip("0").rstrip(".") if "." in text and asset != "USDT" else text


def say(text: str) -> None:
    """One plain line on standard output (no markup, no highlighting)."""
    out.print(text, highlight=False, markup=False)


def show_json(value: object) -> None:
    """A typed result (a pydantic model, or a list of them) as JSON on standard output."""
    from pydantic import TypeAdapter

    out.print_json(TypeAdapter(type(value)).dump_json(value).decode())


def show_markdown(text: str) -> None:
    """Markdown (what an artifact shows in the UI) rendered for the terminal: headings, tables, lists."""
    from rich.markdown import Markdown

    out.print(Markdown(text))


def show_report(report: CycleReport, as_json: bool) -> None:
    """A cycle or watch report: the typed report as JSON, or the summary table and its notes."""
    if as_json:
        out.print_json(report.model_dump_json())
        return
    from triplegain.report import portfolio_lines, summary_columns, summary_rows

    title = f"{report.cycle_id}  as of {report.timestamp:%Y-%m-%d %H:%M} UTC  [{report.status}]"
    if report.replayed:
        title += "  (already ran: stored report, no new order)"
    table = Table(title=title, caption=f"decided by {report.decided_by}, {report.mode} mode")
    for column in summary_columns(report):
        table.add_column(column, overflow="fold")
    for row in summary_rows(report):
        table.add_row(*row)
    out.print(table)
    for line in portfolio_lines(report):
        say(line)
    for note in report.notes:
        say(f"note: {note}")


def show_optimization(result: OptimizationResult) -> None:
    """Per window: in-sample against out-of-sample (the gap), the configured settings, the best settings."""
    from triplegain.optimize import describe_params

    objective = result.objective
    limit = f", max drawdown {result.max_drawdown_pct:g}%" if result.max_drawdown_pct else ""
    table = Table(title=f"walk-forward {result.study}: {objective}{limit}")
    columns = ("test window", "trials (failed)", "in-sample", "out-of-sample", "configured", "gap", "best")
    for column in columns:
        table.add_column(column, justify="left" if column in ("test window", "best") else "right")

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for w in result.windows:
        table.add_row(
            f"{w.test_start:%Y-%m-%d}..{w.test_end:%Y-%m-%d}",
            f"{w.trials} ({w.failed})",
            number(w.objective_in),
            number(w.objective_out),
            number(w.objective_default_out),
            number(w.gap),
            describe_params(w.best_params),
        )
    out.print(table)
    wins, windows = result.wins(), len(result.windows)
    say(f"searched settings beat the configured ones in {wins} of {windows} test windows")
    if result.outputs:
        say(
            f"chosen settings (--config): {result.outputs.get('settings')}\n"
            f"result: {result.outputs.get('json')}  plot: {result.outputs.get('png')}"
        )


def show_backtest(result: BacktestResult, replayed: bool) -> None:
    """Metrics against the baselines, the models' leaderboard, who decided, the last notes."""
    table = Table(
        title=f"{', '.join(result.symbols)}: {result.start:%Y-%m-%d %H:%M} to "
        f"{result.end:%Y-%m-%d %H:%M} UTC ({result.hours} h)"
    )
    for column in BACKTEST_COLUMNS:
        table.add_column(column, justify="right")
    rows = {f"TripleGain ({', '.join(result.decided_by)})": result.metrics, **result.baselines}
    for name, m in rows.items():
        table.add_row(
            name,
            f"{m.total_return_pct:+.2f}",
            f"{m.annualised_return_pct:+.1f}",
            f"{m.max_drawdown_pct:.2f}",
            f"{m.sharpe:.2f}",
            f"{m.sortino:.2f}",
            str(m.trades),
            f"{m.fees_paid:.2f}",
            f"{m.exposure_pct:.1f}",
        )
    out.print(table)
    show_leaderboard(result.leaderboard, "models, shadow-scored on their votes")
    say("decided by (symbol-hours): " + ", ".join(f"{name} {n}" for name, n in result.decisions.items()))
    say(result.after_halt)
    if result.hodl_bags:
        bags = ", ".join(f"{a} {v}" for a, v in result.hodl_bags.items())
        say(f"hodl bags at the end (never sold): {bags}, worth {result.hodl_value_usd} USD")
    if replayed:
        say(
            f"recorded answers replayed: {result.replayed_answers}, prompts without one: "
            f"{result.missing_answers} (those models abstained; with none left, the offline model decided)"
        )
        if result.sentiment_refreshes:
            say(f"sentiment refreshes replayed at their times: {result.sentiment_refreshes}")
    elif "offline-deterministic" in result.decided_by:
        say("decisions by the offline model (no recorded LLM answers were replayed)")
    shown = result.notes[-NOTES_SHOWN:]
    if len(result.notes) > len(shown):
        say(f"the last {len(shown)} of {len(result.notes)} notes (all of them are in the JSON result):")
    for note in shown:
        say(f"note: {note}")


def show_leaderboard(rows: Sequence[ModelScore], title: str) -> None:
    """Every model's votes scored, best first."""
    board = Table(title=f"{title} (right at 4 h; mean move in favour of BUY/SELL)")
    for column in ("model", "votes", "scored", "right %", "1 h %", "4 h %", "24 h %"):
        board.add_column(column, justify="right")
    for row in rows:
        moves = [f"{m:+.3f}" if m is not None else "-" for m in row.mean_outcome_pct.values()]
        right = f"{row.accuracy_pct:.1f}" if row.accuracy_pct is not None else "-"
        board.add_row(row.model, str(row.votes), str(row.scored), right, *moves)
    out.print(board)


def show_plans(plans: Sequence[PlanRecord]) -> None:
    """The newest rebalance plans, each batch with its schedule and status."""
    if not plans:
        say("no rebalance plan yet")
    for plan in plans:
        say(f"plan {plan.id} ({plan.status}), {plan.total_usd} USD: {plan.reason}")
        for b in plan.batches:
            trades = ", ".join(f"{t.side} {t.amount_usd} {t.symbol}" for t in b.trades)
            note = f" ({b.note})" if b.note else ""
            say(f"  batch {b.index} at {b.scheduled_at:%Y-%m-%d %H:%M} UTC: {b.status}; {trades}{note}")


def show_status(current: CoordinatorStatus, as_json: bool) -> None:
    """State, degradation, breakers, last cycle, balances, open positions, each flow's last run, changes."""
    if as_json:
        out.print_json(current.model_dump_json())
        return
    say(f"state: {current.state}")
    say(
        f"degradation: {current.degradation} "
        f"({current.llm_failures} LLM and {current.api_failures} API failures outstanding)"
    )
    breakers = ", ".join(f"{k} ({v})" for k, v in current.tripped_breakers.items()) or "none tripped"
    say(f"circuit breakers: {breakers}; losses in a row: {current.consecutive_losses}")
    last = f"{current.last_cycle_id} ({current.last_cycle_status})" if current.last_cycle_id else "none yet"
    say(f"last cycle: {last}")
    equity = f"{current.equity:.2f} USDT" if current.equity is not None else "unknown (no cycle yet)"
    balances = ", ".join(f"{a} {amount(a, v)}" for a, v in current.balances.items())
    say(f"equity: {equity}; balances: {balances}")
    if current.account_turn is not None:
        say(f"live account's turn: {current.account_turn}")
    _positions_table(current)
    _runs_table(current)
    from triplegain.report import hodl_line

    say(hodl_line(current.hodl_bags, current.hodl_pending_usd))
    say(f"rebalance plan: {current.dca_plan or 'none yet'}")
    for c in current.recent_changes:
        say(f"{c.at:%Y-%m-%d %H:%M} {c.from_state} -> {c.to_state} by {c.actor}: {c.reason}")


def _positions_table(current: CoordinatorStatus) -> None:
    if not current.positions:
        say("open positions: none")
        return
    table = Table(title="open positions")
    for column in ("symbol", "size", "entry", "last", "P&L", "stop", "target"):
        table.add_column(column)
    for p in current.positions:
        pnl = f"{p.unrealized_pnl:+.2f}" if p.unrealized_pnl is not None else "-"
        table.add_row(
            p.symbol,
            f"{p.size}",
            f"{p.entry_price}",
            f"{p.last_price}",
            pnl,
            f"{p.stop_loss}",
            f"{p.take_profit}",
        )
    out.print(table)


def _runs_table(current: CoordinatorStatus) -> None:
    if not current.last_runs:
        say("last runs: none recorded yet")
        return
    runs = Table(title="last run of each flow")
    for column in ("flow", "run", "started (UTC)", "finished (UTC)", "status", "error"):
        runs.add_column(column, overflow="fold")
    for name, run in sorted(current.last_runs.items()):
        finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else "-"
        started = f"{run.started_at:%Y-%m-%d %H:%M:%S}"
        runs.add_row(name, run.run_key, started, finished, run.status, run.error or "")
    out.print(runs)


def fail(e: BaseException, verbose: bool) -> None:
    """The error in one line on standard error (with the traceback when verbose)."""
    if verbose:
        import traceback

        traceback.print_exception(e)
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    err.print(f"[red]error:[/red] {type(e).__name__}: {message}", soft_wrap=True, highlight=False)
