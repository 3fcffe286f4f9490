"""The `triplegain` command line: each command parses its options, calls one flow or notebook function,
and hands the result to `flows.console`. Prefect is imported lazily, after its environment is prepared."""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flows.console import (
    fail,
    out,
    say,
    show_backtest,
    show_json,
    show_leaderboard,
    show_plans,
    show_report,
    show_status,
)

if TYPE_CHECKING:
    from triplegain.backtest import BacktestResult

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="TripleGain: LLM-assisted paper trading on Prefect."
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        say(f"triplegain {version('triplegain')}")
        raise typer.Exit()


@app.callback()
def main_callback(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """TripleGain: LLM-assisted paper trading on Prefect."""


Config = Annotated[str | None, typer.Option("--config", help="YAML settings file")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Prefect logs and full tracebacks")]
Symbols = Annotated[str | None, typer.Option(help="Comma-separated, e.g. BTC/USDT,XRP/USDT")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded with who asked)")]
By = Annotated[str | None, typer.Option("--by", help="Who asks (default: your user name)")]

QUIET_LOGGING = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # the terminal: what the user must act on
    "PREFECT_LOGGING_ROOT_LEVEL": "CRITICAL",  # other libraries' shutdown noise (SQLAlchemy, EventsWorker)
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",  # the temporary server's services, cancelled at exit
}


@app.command()
def run(
    at: Annotated[
        str | None,
        typer.Option(
            help="Cycle time in UTC, e.g. 2024-06-01T12:00Z (default: now; on replay data the hour after the "
            "last cycle)"
        ),
    ] = None,
    symbols: Symbols = None,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run one trading cycle (paper broker, bundled data by default) and print its report."""
    when = _parse_at(at) if at else None
    report = _call_flow(
        "flows/trading_cycle.py:trading_cycle",
        verbose,
        at=when,
        symbols=_symbols(symbols),
        config_file=config,
    )
    show_report(report, as_json)


@app.command()
def watch(
    at: Annotated[
        str | None,
        typer.Option(
            help="Watch time in UTC, e.g. 2024-06-01T12:05Z (default: now; on replay data the hour after the "
            "last cycle)"
        ),
    ] = None,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run one market watch: mark to market, stop-loss / take-profit / trailing exits, circuit breakers."""
    when = _parse_at(at) if at else None
    show_report(
        _call_flow("flows/market_watch.py:market_watch", verbose, at=when, config_file=config), as_json
    )


@app.command()
def rebalance(
    force: Annotated[
        bool, typer.Option("--force", help="Ignore the drift threshold and the minimum interval")
    ] = False,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Check the allocation against its targets; plan (and start) a rebalance when it drifted."""
    check = _call_flow("flows/rebalance.py:portfolio_check", verbose, force=force, config_file=config)
    if as_json:
        show_json(check)
        return
    from flows.console import show_markdown
    from flows.rebalance import render_check

    show_markdown(render_check(check))


@app.command()
def backtest(
    start: Annotated[
        str | None, typer.Option(help="First hour, UTC (default: 30 days before the data ends)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last hour, UTC (default: the end of the data)")] = None,
    symbols: Symbols = None,
    data: Annotated[
        str | None, typer.Option(help="Directory of BASE_USDT-1h.csv files (default: bundled)")
    ] = None,
    out_file: Annotated[
        str | None,
        typer.Option("--out", help="JSON result file (default: backtests/ in the TripleGain data directory)"),
    ] = None,
    plot: Annotated[str | None, typer.Option(help="PNG plot file (default: beside the JSON)")] = None,
    rebalance: Annotated[
        bool, typer.Option(help="Run the hourly portfolio check and its DCA batches")
    ] = True,
    replay_llm: Annotated[
        bool,
        typer.Option("--replay-llm", help="Models vote with their answers recorded in the project database"),
    ] = False,
    config: Config = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics against the baselines as JSON")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Replay history hour by hour through the trading code; compare with buy-and-hold and rebalancing."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from flows.backtest_setup import prepare_backtest
    from flows.console import err

    try:
        setup = prepare_backtest(start, end, _symbols(symbols), data, config, replay_llm)
        if setup.replay is not None:
            models = ", ".join(m.name for m in setup.replay.models)
            err.print(f"replaying {len(setup.replay.recordings)} recorded answers of {models}")
        columns = (TextColumn("backtest"), BarColumn(), TextColumn("{task.completed}/{task.total} h"))
        with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task("hours", total=None)
            result = setup.run(rebalance, lambda done, total: bar.update(task, completed=done, total=total))
        json_path = Path(out_file) if out_file else _default_backtest_path(result)
        json_path, png = _write_backtest(result, json_path, Path(plot) if plot else None)
    except Exception as e:
        _fail(e, verbose)
    if as_json:
        summary = {"TripleGain": result.metrics, **result.baselines}
        out.print_json(
            data={k: m.model_dump(mode="json") for k, m in summary.items()} | {"result": str(json_path)}
        )
        return
    show_backtest(result, replayed=setup.replay is not None)
    say(f"result: {json_path}  plot: {png}")


@app.command()
def optimize(
    space: Annotated[str, typer.Argument(help="Search space YAML: settings keys with ranges or choices")],
    symbols: Symbols = None,
    data: Annotated[
        str | None, typer.Option(help="Directory of BASE_USDT-1h.csv files (default: bundled)")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name; the same name resumes (default: the space file's name)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Local Dask worker processes (default: one per core)")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="An existing Dask scheduler, e.g. tcp://host:8786")
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Output directory (default: optimize/<study> in the data dir)")
    ] = None,
    windows_at_once: Annotated[
        int | None,
        typer.Option(
            "--windows-at-once",
            min=1,
            help="Windows searched side by side (default: enough to keep every worker busy, plus one)",
        ),
    ] = None,
    config: Config = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    verbose: Verbose = False,
) -> None:
    """Walk-forward search: Optuna trials (backtests on Dask) per training window, checked on the next."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from flows.console import err, show_optimization

    _prepare_prefect_env(verbose)
    try:
        from flows.optimize_setup import prepare_optimization

        setup = prepare_optimization(space, config, _symbols(symbols), data, study)
    except Exception as e:
        _fail(e, verbose)
    err.print(
        f"study {setup.name}: {len(setup.windows)} windows x {setup.space.trials} trials, "
        f"objective {setup.space.objective}"
    )
    _quiet_loggers(verbose, "distributed", "optuna")
    try:
        _start_temporary_server()
        from flows.optimize import on_dask, trial_listener

        columns = (TextColumn("trials"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
        with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task("trials", total=setup.trials)

            def advance(progress: Any) -> None:
                bar.update(task, completed=progress.finished)

            with trial_listener(advance):
                result = on_dask(dask_address, workers)(
                    space, config, _symbols(symbols), data, setup.name, out_dir, windows_at_once
                )
    except (KeyboardInterrupt, Exception) as e:
        from flows.optimize import OrchestrationLost
        from triplegain.errors import caused_by

        _fail(  # what stopped the study, not the failed report of it to a server that is gone
            caused_by(e, KeyboardInterrupt, OrchestrationLost) or e,
            verbose,
            interrupted=f"the finished trials of study {setup.name} are kept; run the same command again "
            "to resume it",
        )
    if as_json:
        out.print_json(result.model_dump_json())
        return
    show_optimization(result)


@app.command()
def leaderboard(
    days: Annotated[int, typer.Option(help="Votes of the newest this many days of cycles")] = 30,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Every model's stored votes scored on their 1/4/24 h outcome, best first."""
    try:
        from flows.leaderboard import model_leaderboard

        rows = model_leaderboard(days, config)
    except Exception as e:
        _fail(e, verbose)
    if as_json:
        show_json(rows)
        return
    if not rows:
        say("no votes stored yet: run some trading cycles first")
        return
    show_leaderboard(rows, "models, shadow-scored on their stored votes")


@app.command()
def serve(
    config: Annotated[str | None, typer.Option(help="YAML settings file passed to every flow")] = None,
) -> None:
    """Serve all five deployments of prefect.yaml from this process until Ctrl-C (needs a Prefect API)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.settings import prefect_api_url

    if prefect_api_url() is None:
        from flows.console import err

        err.print(
            "error: `serve` needs a Prefect server: start one with `prefect server start` and set "
            "PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), in the environment or a Prefect profile",
            highlight=False,
        )
        raise typer.Exit(code=2)
    from flows.serve import serve_all

    serve_all(config_file=os.path.abspath(config) if config else None)


blocks = typer.Typer(no_args_is_help=True, help="Prefect block types of TripleGain.")
app.add_typer(blocks, name="blocks")


@blocks.command("register")
def blocks_register(verbose: Verbose = False) -> None:
    """Register the block types (database, LLM provider, exchange keys) with the Prefect server."""
    _prepare_prefect_env(verbose)
    try:
        from flows.serve import register_blocks

        slugs = register_blocks()
    except Exception as e:
        _fail(e, verbose)
    say("registered: " + ", ".join(slugs))


automations = typer.Typer(
    no_args_is_help=True, help="Alerts: Prefect automations that notify on a halt, a breaker, a crash."
)
app.add_typer(automations, name="automations")


@automations.command("install")
def automations_install(
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="HTTP endpoint to POST each alert to (JSON)")
    ] = None,
    slack: Annotated[str | None, typer.Option("--slack", help="Slack incoming-webhook URL")] = None,
    verbose: Verbose = False,
) -> None:
    """Create or update (idempotently) the automations that notify on a halt, a tripped breaker, a rise in
    degradation and a crashed run; needs a Prefect server (PREFECT_API_URL)."""
    _prepare_prefect_env(verbose)
    try:
        from flows.automations import BLOCK_NAME, install_automations

        names = install_automations(webhook_url=webhook, slack_url=slack)
    except Exception as e:
        _fail(e, verbose)
    say(f"notification block {BLOCK_NAME}; automations: " + ", ".join(names))


dca = typer.Typer(
    no_args_is_help=True, help="DCA rebalance plans: status, and running due batches without a server."
)
app.add_typer(dca, name="dca")


@dca.command("run-due")
def dca_run_due(config: Config = None, verbose: Verbose = False) -> None:
    """Execute every due batch of the active plan (each at most once, skipped while paused or halted)."""
    done = _call_flow("flows/rebalance.py:run_due_batches", verbose, config_file=config)
    if not done:
        say("no batch is due")
    for b in done:
        say(f"batch {b.plan_id}#{b.index}: {b.status}" + (f" ({b.note})" if b.note else ""))


@dca.command("status")
def dca_status(config: Config = None, as_json: AsJson = False, verbose: Verbose = False) -> None:
    """The newest plans and each batch's schedule and status."""
    try:
        from flows.control import dca_status as load

        plans = load(config)
    except Exception as e:
        _fail(e, verbose)
    if as_json:
        show_json(plans)
        return
    show_plans(plans)


@app.command()
def pause(
    reason: Reason, by: By = None, config: Config = None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """Keep analysing but place no trade until resumed."""
    _control("pause", reason, by, config, as_json=as_json, verbose=verbose)


@app.command()
def resume(
    reason: Reason,
    by: By = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required to resume from HALTED")] = False,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Trade again (from HALTED only with --confirm)."""
    _control("resume", reason, by, config, confirm, as_json, verbose)


@app.command()
def halt(
    reason: Reason, by: By = None, config: Config = None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """Stop every trading cycle until a confirmed resume."""
    _control("halt", reason, by, config, as_json=as_json, verbose=verbose)


@app.command("reset-breaker")
def reset_breaker(
    reason: Reason, by: By = None, config: Config = None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """Reset the max-drawdown breaker by hand (the coordinator stays HALTED until resume --confirm)."""
    _control("reset_breaker", reason, by, config, as_json=as_json, verbose=verbose)


@app.command()
def reconcile(
    accept: Annotated[
        bool, typer.Option("--accept", help="Resolve the differences on your word (needs --reason)")
    ] = False,
    protect: Annotated[
        bool,
        typer.Option(
            "--protect", help="First place a new stop-loss and take-profit where one is gone (needs --reason)"
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why (recorded with who asked)")
    ] = None,
    by: By = None,
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """A live account against its exchange: every difference, and whether trading may go on (exit code 3
    when it may not). --protect places a new protection pair where one is gone; --accept resolves what you
    vouch for and compares again."""
    result = _call_flow(
        "flows/reconcile.py:reconcile",
        verbose,
        accept=accept,
        reason=reason,
        by=by,
        config_file=config,
        protect=protect,
    )
    if as_json:
        show_json(
            {
                "trading_allowed": result.trading_allowed,
                "differences": [
                    {"kind": d.kind, "subject": d.subject, "detail": d.detail, "explained": d.explained}
                    for d in result.differences
                ],
                "exchange_balances": {k: str(v) for k, v in result.exchange_balances.items()},
            }
        )
    else:
        say(result.report())
    if not result.trading_allowed:
        raise typer.Exit(code=3)


@app.command()
def status(config: Config = None, as_json: AsJson = False, verbose: Verbose = False) -> None:
    """State, degradation, breakers, each flow's last run, balances and open positions with P&L."""
    try:
        from flows.control import status as load

        current = load(config)
    except Exception as e:
        _fail(e, verbose)
    show_status(current, as_json)


candles_app = typer.Typer(
    no_args_is_help=True,
    help="The exchange's candle history kept for live runs (Kraken serves only its newest 720 hours).",
)
app.add_typer(candles_app, name="candles")


@candles_app.command("import")
def candles_import(
    path: Annotated[Path, typer.Argument(help="Hourly candles: Kraken's OHLCVT XBTUSDT_60.csv or our CSV")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="e.g. BTC/USDT")],
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Keep a downloaded hourly history as the configured exchange's candles of SYMBOL, so live runs
    analyse the full lookback from the first run."""
    try:
        from flows.candles import import_candles

        kept = import_candles(path, symbol, config)
    except Exception as e:
        _fail(e, verbose)
    show_json(kept) if as_json else say(kept.summary())


@candles_app.command("show")
def candles_show(
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="e.g. BTC/USDT")],
    config: Config = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """How many of SYMBOL's candles are kept, and the spans of time they cover."""
    try:
        from flows.candles import kept_candles

        kept = kept_candles(symbol, config)
    except Exception as e:
        _fail(e, verbose)
    show_json(kept) if as_json else say(kept.summary())


def _default_backtest_path(result: BacktestResult) -> Path:
    """backtests/backtest-<start>-<end>.json in the TripleGain data directory (beside the default
    database), never the working directory: a backtest run in a checkout leaves it clean."""
    from platformdirs import user_data_dir

    name = f"backtest-{result.start:%Y%m%dT%H%MZ}-{result.end:%Y%m%dT%H%MZ}.json"
    return Path(user_data_dir("triplegain", appauthor=False)) / "backtests" / name


def _write_backtest(result: BacktestResult, json_path: Path, plot: Path | None) -> tuple[Path, Path]:
    """The result as JSON and its plot as PNG (beside the JSON unless given); returns both paths."""
    from triplegain.backtest_plot import plot_backtest

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(result.model_dump_json(indent=1))
    return json_path, plot_backtest(result, plot or json_path.with_suffix(".png"))


def _control(
    command: str,
    reason: str,
    by: str | None,
    config: str | None,
    confirm: bool = False,
    as_json: bool = False,
    verbose: bool = False,
) -> None:
    try:
        from flows import control

        if command == "resume":
            result = control.resume(reason, by, confirm=confirm, config_file=config)
        else:
            result = getattr(control, command)(reason, by, config_file=config)
    except Exception as e:
        _fail(e, verbose)
    if as_json:
        show_json(result)
        return
    say(f"{result.message} (now {result.state})")


def _call_flow(entrypoint: str, verbose: bool, **parameters: Any) -> Any:
    """Run the flow at `entrypoint` (as prefect.yaml names it) in this process; on failure, one line and
    exit code 1. The settings (config file, symbols) and the database are checked first, before Prefect is
    imported or a temporary server started, so a typo fails in a second and leaves no failed run behind."""
    _prepare_prefect_env(verbose)
    try:
        from flows.settings import preflight

        preflight(parameters.get("config_file"), parameters.get("symbols"))
    except Exception as e:
        _fail(e, verbose)
    _quiet_loggers(verbose)
    try:
        _start_temporary_server()
        from flows.serve import load_flow

        return load_flow(entrypoint)(**parameters)
    except (KeyboardInterrupt, Exception) as e:
        _fail(e, verbose)


def _prepare_prefect_env(verbose: bool) -> None:
    """Prefect reads its settings at import: set defaults (the user's own values win) before importing it.

    The temporary server gets time to start on small machines and sends no analytics. Every run's logs
    reach the Prefect API at INFO; without --verbose the terminal shows only the runs' warnings and errors
    (what the user must act on), not Prefect's progress lines. Also without --verbose, the noise of a
    process shutting down is hidden: the temporary server cancels its event recorders mid-flush when it is
    stopped at exit (an ERROR traceback from its services and SQLAlchemy's pool, though the run completed
    and was recorded), and the events client says "Still processing items" while it drains.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        for name, level in QUIET_LOGGING.items():
            os.environ.setdefault(name, level)


def _quiet_loggers(verbose: bool, *libraries: str) -> None:
    """Without --verbose, only errors from Prefect's events and log workers (named outright: seen once with
    an API configured despite the root level) and from `libraries`."""
    if not verbose:
        for name in ("EventsWorker", "APILogWorker", *libraries):
            logging.getLogger(name).setLevel(logging.ERROR)
        if "distributed" in libraries:  # local Dask workers are processes of their own: they read it at start
            os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


def _start_temporary_server() -> None:
    """Without a Prefect API, start the temporary server now (saying so: it takes about 10 s), deaf to the
    terminal's Ctrl-C, so that an interrupted run is still marked crashed in it and the command stops at
    once (`flows.ctrl_c`), instead of retrying a server that died with the Ctrl-C for minutes."""
    from flows.console import err
    from flows.settings import prefect_api_url

    if prefect_api_url() is None:
        err.print("[dim]no Prefect API configured: starting a temporary Prefect server (about 10 s)...[/dim]")
        from flows.ctrl_c import start_temporary_server

        start_temporary_server()


def _symbols(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def _parse_at(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 time, e.g. 2024-06-01T12:00Z", param_hint="--at"
        ) from None


def _interrupted(e: BaseException) -> bool:
    """Whether `e` was raised while handling Ctrl-C: reporting the interrupted run can fail on its way out
    (a refused connection, raised during the handling of the KeyboardInterrupt, from a server that died on
    its own or heard the Ctrl-C from a terminal it shares)."""
    from triplegain.errors import caused_by

    return caused_by(e, KeyboardInterrupt) is not None


def _fail(e: BaseException, verbose: bool, interrupted: str | None = None) -> NoReturn:
    """The error in one line and exit 1. Ctrl-C, or an error raised while handling it, is the interruption:
    `interrupted` (what the user can do about it) or what was raised, and exit 130."""
    if _interrupted(e):
        from flows.console import err

        out_of_it = "" if isinstance(e, KeyboardInterrupt) else f" ({type(e).__name__} on the way out)"
        why = f": {interrupted}" if interrupted else out_of_it
        err.print(f"interrupted{why}")
        raise typer.Exit(code=130) from None
    fail(e, verbose)
    raise typer.Exit(code=1)


def main() -> None:
    """Entry point of the `triplegain` script."""
    sys.exit(app())
