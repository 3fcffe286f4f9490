"""The `triplegain` command line. Prefect is imported lazily, after its environment is prepared."""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="TripleGain: LLM-assisted paper trading on Prefect."
)
# Piped output (logs, CI) gets a fixed width so the report table does not wrap into tall cells.
out = Console() if sys.stdout.isatty() else Console(width=140)
err = Console(stderr=True)


@app.callback()
def main_callback() -> None:
    """TripleGain: LLM-assisted paper trading on Prefect."""


Config = Annotated[str | None, typer.Option("--config", help="YAML settings file")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Prefect logs and full tracebacks")]


@app.command()
def run(
    at: Annotated[
        str | None,
        typer.Option(help="Cycle time in UTC, e.g. 2024-06-01T12:00Z (default: end of replay data)"),
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated, e.g. BTC/USDT,XRP/USDT")] = None,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run one trading cycle (paper broker, bundled data by default) and print its report."""
    when = _parse_at(at) if at else None
    symbol_list = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    _prepare_prefect_env(verbose)
    try:
        from flows.trading_cycle import trading_cycle

        report = trading_cycle(at=when, symbols=symbol_list, config_file=config)
    except Exception as e:
        _fail(e, verbose)
    _show(report, as_json)


@app.command()
def watch(
    at: Annotated[
        str | None,
        typer.Option(help="Watch time in UTC, e.g. 2024-06-01T12:05Z (default: end of replay data)"),
    ] = None,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run one market watch: mark to market, stop-loss / take-profit / trailing exits, circuit breakers."""
    when = _parse_at(at) if at else None
    _prepare_prefect_env(verbose)
    try:
        from flows.market_watch import market_watch

        report = market_watch(at=when, config_file=config)
    except Exception as e:
        _fail(e, verbose)
    _show(report, as_json)


@app.command()
def rebalance(
    force: Annotated[
        bool, typer.Option("--force", help="Ignore the drift threshold and the minimum interval")
    ] = False,
    config: Config = None,
    verbose: Verbose = False,
) -> None:
    """Check the allocation against its targets; plan (and start) a rebalance when it drifted."""
    _prepare_prefect_env(verbose)
    try:
        from flows.rebalance import portfolio_check, render_check

        check = portfolio_check(force=force, config_file=config)
    except Exception as e:
        _fail(e, verbose)
    out.print(render_check(check), highlight=False, markup=False)


@app.command()
def backtest(
    start: Annotated[
        str | None, typer.Option(help="First hour, UTC (default: 30 days before the data ends)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last hour, UTC (default: the end of the data)")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated, e.g. BTC/USDT,XRP/USDT")] = None,
    data: Annotated[
        str | None, typer.Option(help="Directory of BASE_USDT-1h.csv files (default: bundled)")
    ] = None,
    out_file: Annotated[str, typer.Option("--out", help="JSON result file")] = "backtest.json",
    plot: Annotated[str | None, typer.Option(help="PNG plot file (default: beside the JSON)")] = None,
    rebalance: Annotated[
        bool, typer.Option(help="Run the hourly portfolio check and its DCA batches")
    ] = True,
    replay_llm: Annotated[
        bool,
        typer.Option("--replay-llm", help="Models vote with their answers recorded in the project database"),
    ] = False,
    config: Config = None,
) -> None:
    """Replay history hour by hour through the trading code; compare with buy-and-hold and rebalancing."""
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from flows.settings import load_run_settings
    from triplegain.backtest import default_window, run_backtest
    from triplegain.backtest_plot import plot_backtest
    from triplegain.cycle import parse_time
    from triplegain.market import ReplaySource

    try:
        overrides: dict[str, Any] = {"market": {"source": "replay"}}
        if symbols:
            overrides["market"]["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
        if data:
            overrides["market"]["data_dir"] = data
        settings = load_run_settings(config, **overrides)
        source = ReplaySource(settings.market.data_dir)
        first, last = default_window(source, settings.market.symbols)
        first = parse_time(start) if start else first
        last = parse_time(end) if end else last
        replay = None
        if replay_llm:
            from tasks.storage import engine_for
            from triplegain.backtest import LLMReplay, replay_models, replay_resolution_chain
            from triplegain.storage import unit_of_work
            from triplegain.storage.repository import load_recordings

            models = replay_models(settings)
            with unit_of_work(engine_for(settings)) as session:
                recordings = load_recordings(session, [m.model for m in models])
            replay = LLMReplay(models, recordings, replay_resolution_chain(settings))
            err.print(f"replaying {len(recordings)} recorded answers of {', '.join(m.name for m in models)}")
        with Progress(
            TextColumn("backtest"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} h"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("hours", total=None)
            result = run_backtest(
                source,
                first,
                last,
                settings,
                rebalancing=rebalance,
                replay=replay,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        json_path = Path(out_file)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(result.model_dump_json(indent=1))
        png = plot_backtest(result, Path(plot) if plot else json_path.with_suffix(".png"))
    except Exception as e:
        _fail(e, verbose=False)
    table = Table(
        title=f"{', '.join(result.symbols)}: {result.start:%Y-%m-%d %H:%M} to "
        f"{result.end:%Y-%m-%d %H:%M} UTC ({result.hours} h)"
    )
    for column in (
        "",
        "return %",
        "annualised %",
        "max drawdown %",
        "Sharpe",
        "Sortino",
        "trades",
        "fees",
        "exposure %",
    ):
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
    _print_leaderboard(result.leaderboard, "models, shadow-scored on their votes")
    who = ", ".join(f"{name} {n}" for name, n in result.decisions.items())
    out.print(f"decided by (symbol-hours): {who}", highlight=False, markup=False)
    if replay is not None:
        out.print(
            f"recorded answers replayed: {result.replayed_answers}, prompts without one: "
            f"{result.missing_answers} (those models abstained; with none left, the offline model decided)",
            highlight=False,
        )
    elif "offline-deterministic" in result.decided_by:
        out.print("decisions by the offline model (no recorded LLM answers were replayed)", highlight=False)
    for event in result.events[-10:]:
        out.print(f"event: {event}", highlight=False, markup=False)
    out.print(f"result: {json_path}  plot: {png}", highlight=False)


@app.command()
def leaderboard(
    days: Annotated[int, typer.Option(help="Votes of the newest this many days of cycles")] = 30,
    config: Config = None,
) -> None:
    """Every model's stored votes scored on their 1/4/24 h outcome, best first."""
    try:
        from flows.leaderboard import model_leaderboard

        rows = model_leaderboard(days, config)
    except Exception as e:
        _fail(e, verbose=False)
    if not rows:
        out.print("no votes stored yet: run some trading cycles first", highlight=False)
        return
    _print_leaderboard(rows, "models, shadow-scored on their stored votes")


def _print_leaderboard(rows: Any, title: str) -> None:
    board = Table(title=f"{title} (right at 4 h; mean move in favour of BUY/SELL)")
    for column in ("model", "votes", "scored", "right %", "1 h %", "4 h %", "24 h %"):
        board.add_column(column, justify="right")
    for row in rows:
        moves = [f"{m:+.3f}" if m is not None else "-" for m in row.mean_outcome_pct.values()]
        right = f"{row.accuracy_pct:.1f}" if row.accuracy_pct is not None else "-"
        board.add_row(row.model, str(row.votes), str(row.scored), right, *moves)
    out.print(board)


@app.command()
def serve(
    config: Annotated[str | None, typer.Option(help="YAML settings file passed to every flow")] = None,
) -> None:
    """Serve all five deployments of prefect.yaml from this process until Ctrl-C (needs PREFECT_API_URL)."""
    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "error: `serve` needs a Prefect server: start one with `prefect server start` and set "
            "PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)",
            highlight=False,
        )
        raise typer.Exit(code=2)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.serve import serve_all

    serve_all(config_file=os.path.abspath(config) if config else None)


blocks = typer.Typer(no_args_is_help=True, help="Prefect block types of TripleGain.")
app.add_typer(blocks, name="blocks")


@blocks.command("register")
def blocks_register() -> None:
    """Register the block types (database, LLM provider) with the Prefect server."""
    try:
        from flows.serve import register_blocks

        slugs = register_blocks()
    except Exception as e:
        _fail(e, verbose=False)
    out.print("registered: " + ", ".join(slugs), highlight=False)


dca = typer.Typer(
    no_args_is_help=True, help="DCA rebalance plans: status, and running due batches without a server."
)
app.add_typer(dca, name="dca")


@dca.command("run-due")
def dca_run_due(
    config: Config = None,
    verbose: Verbose = False,
) -> None:
    """Execute every due batch of the active plan (each at most once, skipped while paused or halted)."""
    _prepare_prefect_env(verbose)
    try:
        from flows.rebalance import run_due_batches

        done = run_due_batches(config_file=config)
    except Exception as e:
        _fail(e, verbose)
    if not done:
        out.print("no batch is due", highlight=False)
    for b in done:
        out.print(
            f"batch {b.plan_id}#{b.index}: {b.status}" + (f" ({b.note})" if b.note else ""), highlight=False
        )


@dca.command("status")
def dca_status(config: Config = None) -> None:
    """The newest plans and each batch's schedule and status."""
    try:
        from flows.rebalance import dca_status as load

        plans = load(config)
    except Exception as e:
        _fail(e, verbose=False)
    if not plans:
        out.print("no rebalance plan yet", highlight=False)
    for plan in plans:
        out.print(
            f"plan {plan.id} ({plan.status}), {plan.total_usd} USD: {plan.reason}",
            highlight=False,
            markup=False,
        )
        for b in plan.batches:
            trades = ", ".join(f"{t.side} {t.amount_usd} {t.symbol}" for t in b.trades)
            out.print(
                f"  batch {b.index} at {b.scheduled_at:%Y-%m-%d %H:%M} UTC: {b.status}; {trades}"
                + (f" ({b.note})" if b.note else ""),
                highlight=False,
                markup=False,
            )


Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded with who asked)")]
By = Annotated[str | None, typer.Option("--by", help="Who asks (default: your user name)")]


@app.command()
def pause(reason: Reason, by: By = None, config: Config = None) -> None:
    """Keep analysing but place no trade until resumed."""
    _control("pause", reason, by, config)


@app.command()
def resume(
    reason: Reason,
    by: By = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required to resume from HALTED")] = False,
    config: Config = None,
) -> None:
    """Trade again (from HALTED only with --confirm)."""
    _control("resume", reason, by, config, confirm)


@app.command()
def halt(reason: Reason, by: By = None, config: Config = None) -> None:
    """Stop every trading cycle until a confirmed resume."""
    _control("halt", reason, by, config)


@app.command("reset-breaker")
def reset_breaker(reason: Reason, by: By = None, config: Config = None) -> None:
    """Reset the max-drawdown breaker by hand (the coordinator stays HALTED until resume --confirm)."""
    try:
        from flows.control import reset_breaker as reset

        result = reset(reason, by, config_file=config)
    except Exception as e:
        _fail(e, verbose=False)
    out.print(f"{result.message} (now {result.state})", highlight=False)


@app.command()
def status(config: Config = None, as_json: AsJson = False) -> None:
    """State, degradation, breakers, each flow's last run, balances and open positions with P&L."""
    try:
        from flows.control import status as load

        current = load(config)
    except Exception as e:
        _fail(e, verbose=False)
    if as_json:
        out.print_json(current.model_dump_json())
        return
    out.print(f"state: {current.state}", highlight=False)
    out.print(
        f"degradation: {current.degradation} "
        f"({current.llm_failures} LLM and {current.api_failures} API failures outstanding)",
        highlight=False,
    )
    breakers = ", ".join(f"{k} ({v})" for k, v in current.tripped_breakers.items()) or "none tripped"
    out.print(f"circuit breakers: {breakers}; losses in a row: {current.consecutive_losses}", highlight=False)
    last = f"{current.last_cycle_id} ({current.last_cycle_status})" if current.last_cycle_id else "none yet"
    out.print(f"last cycle: {last}", highlight=False)
    equity = f"{current.equity:.2f} USDT" if current.equity is not None else "unknown (no cycle yet)"
    balances = ", ".join(f"{a} {v:f}" for a, v in current.balances.items())
    out.print(f"equity: {equity}; balances: {balances}", highlight=False)
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
    runs = Table(title="last run of each flow")
    for column in ("flow", "run", "started (UTC)", "finished (UTC)", "status", "error"):
        runs.add_column(column, overflow="fold")
    for name, run in sorted(current.last_runs.items()):
        finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else "-"
        runs.add_row(
            name, run.run_key, f"{run.started_at:%Y-%m-%d %H:%M:%S}", finished, run.status, run.error or ""
        )
    out.print(runs if current.last_runs else "last runs: none recorded yet", highlight=False)
    out.print(f"rebalance plan: {current.dca_plan or 'none yet'}", highlight=False, markup=False)
    for change in current.recent_changes:
        when = f"{change.at:%Y-%m-%d %H:%M}"
        out.print(
            f"{when} {change.from_state} -> {change.to_state} by {change.actor}: {change.reason}",
            highlight=False,
        )


def _control(command: str, reason: str, by: str | None, config: str | None, confirm: bool = False) -> None:
    try:
        from flows import control

        if command == "resume":
            result = control.resume(reason, by, confirm=confirm, config_file=config)
        else:
            result = getattr(control, command)(reason, by, config_file=config)
    except Exception as e:
        _fail(e, verbose=False)
    out.print(f"{result.message} (now {result.state})", highlight=False)


def _prepare_prefect_env(verbose: bool) -> None:
    """Prefect reads its settings at import: set defaults (the user's own values win) before importing it.

    The temporary server gets time to start on small machines and sends no analytics; without --verbose,
    Prefect's own logs are kept for real crashes, since the report and a one-line error say the rest.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    if not os.environ.get("PREFECT_API_URL"):
        err.print("[dim]no PREFECT_API_URL: starting a temporary Prefect server (about 10 s)...[/dim]")


def _parse_at(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 time, e.g. 2024-06-01T12:00Z", param_hint="--at"
        ) from None


def _fail(e: BaseException, verbose: bool) -> Any:
    if verbose:
        traceback.print_exception(e)
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    err.print(f"[red]error:[/red] {type(e).__name__}: {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=1)


def _show(report: Any, as_json: bool) -> None:
    """A cycle or watch report: the typed report as JSON, or the summary table."""
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        _print_report(report)


def _print_report(report: Any) -> None:
    from triplegain.report import SUMMARY_COLUMNS, portfolio_lines, summary_rows

    title = f"{report.cycle_id}  as of {report.timestamp:%Y-%m-%d %H:%M} UTC  [{report.status}]"
    if report.replayed:
        title += "  (already ran: stored report, no new order)"
    table = Table(title=title, caption=f"decided by {report.decided_by}, {report.mode} mode")
    for column in SUMMARY_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in summary_rows(report):
        table.add_row(*row)
    out.print(table)
    for line in portfolio_lines(report):
        out.print(line, highlight=False)
    for event in report.events:
        out.print(f"event: {event}", highlight=False)


def main() -> None:
    """Entry point of the `triplegain` script."""
    sys.exit(app())
