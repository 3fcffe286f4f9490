"""`triplegain optimize` as a Prefect flow: a walk-forward parameter search whose trials are tasks on Dask.

Each trial is a backtest (a Prefect task) run by `prefect-dask`'s DaskTaskRunner: on a local cluster of
worker processes by default, or on an existing Dask scheduler given by address to use other machines. The
search itself (Optuna, in the project database) runs in the flow; see `triplegain.optimize`. Windows are
independent studies, searched side by side in threads of the flow run (`windows_at_once`), so that the
workers are not idle while one window waits for the last trial of its batch.

    from flows.optimize import optimize, on_dask
    result = optimize("space.yaml")                                   # local cluster, one worker per core
    result = on_dask(address="tcp://scheduler:8786")("space.yaml")    # an existing cluster
    result = optimize("space.yaml", windows_at_once=1)                # one window at a time
    [(w.objective_in, w.objective_out) for w in result.windows]
"""

from __future__ import annotations

import contextvars
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from threading import Event, Lock
from typing import Any, TypeVar

import httpx
import optuna
import yaml
from distributed.comm.core import CommClosedError
from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect_dask import DaskTaskRunner

from flows import listeners
from flows.backtest_setup import prepare_backtest
from flows.ctrl_c import WORKER_PRELOAD
from flows.optimize_setup import prepare_optimization, study_name
from flows.runs import inline_png
from flows.tracking import run_name
from triplegain.backtest_metrics import Metrics
from triplegain.errors import caused_by
from triplegain.optimize import (
    OptimizationResult,
    TrialDone,
    Window,
    WindowResult,
    best_trial,
    chosen_config,
    configured,
    describe_params,
    finished,
    nested,
    open_study,
    search,
    window_result,
)
from triplegain.storage.studies import study_storage

FLOW_NAME = "optimize"
RESULT_KEY = "optimize-windows"
PLOT_KEY = "optimize-plot"
PROGRESS_KEY = "optimize-progress"
W = TypeVar("W")
R = TypeVar("R")

trial_listener = listeners.trial_listener  # with trial_listener(callback): optimize(...)


def dask_runner(address: str | None = None, workers: int | None = None) -> DaskTaskRunner:
    """The task runner: an existing Dask scheduler at `address`, or a local cluster of `workers` worker
    processes (default: one per core), one thread each (a backtest holds the GIL), deaf to a terminal's Ctrl-C
    (the command stops them, `flows.ctrl_c`). The local cluster has no dashboard: nothing here showed it,
    and its first import of `distributed.dashboard.scheduler` (bokeh), in Dask's own thread, once failed
    the cluster's start in CI ("module 'distributed.dashboard' has no attribute 'scheduler'")."""
    if address:
        return DaskTaskRunner(address=address)
    if workers is not None and workers < 1:  # `0 or cpu_count()` would quietly mean every core
        raise ValueError(f"workers must be at least 1, got {workers}")
    n = workers or os.cpu_count() or 1
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": n,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "preload": [WORKER_PRELOAD],  # a terminal's Ctrl-C is the command's to handle (flows.ctrl_c)
        }
    )


@task(name="optimize-trial", cache_policy=NO_CACHE, retries=0)
def trial_backtest(
    params: dict[str, Any],
    start: datetime,
    end: datetime,
    config_file: str | None,
    symbols: list[str] | None,
    data_dir: str | None,
) -> Metrics:
    """One backtest with `params` (dotted settings keys) laid over the configuration; the worker keeps its
    hours' analyses for the next trials on the same data (`triplegain.analysis_memo`)."""
    try:  # reads the database block from Prefect's API: the backtest itself asks no one anything
        setup = prepare_backtest(start, end, symbols, data_dir, config_file, overrides=nested(params))
    except Exception as e:
        if lost := _unreachable(e):  # said here: a cause does not travel back from a worker
            raise OrchestrationLost(lost) from e
        raise
    return setup.run(reuse_analyses=True).metrics


def _run_name(parameters: dict[str, Any]) -> str:
    return f"optimize-{study_name(parameters['space_file'], parameters.get('study'))}"


@flow(name=FLOW_NAME, log_prints=False, task_runner=dask_runner(), flow_run_name=run_name(_run_name))
def optimize(
    space_file: str,
    config_file: str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    study: str | None = None,
    output_dir: str | None = None,
    windows_at_once: int | None = None,
) -> OptimizationResult:
    """Walk-forward search over the space in `space_file`; writes JSON, the chosen settings as YAML and a
    PNG into `output_dir` (default: optimize/<study> in the TripleGain data directory) and returns the
    result. Run it again with the same study name to resume an interrupted search.

    Windows are searched side by side, `windows_at_once` at a time (default: enough to keep every Dask
    worker busy, see `windows_to_fill`); each window's study is its own, so the result is the same however
    many run at once."""
    if windows_at_once is not None and windows_at_once < 1:
        raise ValueError(f"windows_at_once must be at least 1, got {windows_at_once}")
    with _workers_reach_this_api():
        return _optimize(space_file, config_file, symbols, data_dir, study, output_dir, windows_at_once)


@contextmanager
def _workers_reach_this_api() -> Iterator[None]:
    """Dask worker processes record their task runs with the API this flow run uses: without a configured
    PREFECT_API_URL that is this process's temporary server, which each worker would otherwise replace with
    one of its own (and the UI would show no trials). Restored afterwards."""
    context = FlowRunContext.get()
    previous = os.environ.get("PREFECT_API_URL")
    if context is not None and context.client is not None and previous is None:
        os.environ["PREFECT_API_URL"] = str(context.client.api_url)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)


def _optimize(
    space_file: str,
    config_file: str | None,
    symbols: list[str] | None,
    data_dir: str | None,
    study: str | None,
    output_dir: str | None,
    windows_at_once: int | None,
) -> OptimizationResult:
    logger = get_run_logger()
    optuna.logging.disable_default_handler()  # its lines go through `logging` like every other library's
    optuna.logging.enable_propagation()
    setup = prepare_optimization(space_file, config_file, symbols, data_dir, study)
    space = setup.space
    at_once = windows_at_once or windows_to_fill(space.batch, len(setup.windows))
    logger.info(
        "study %s: %d windows x %d trials, objective %s, %d window(s) at a time",
        setup.name,
        len(setup.windows),
        space.trials,
        space.objective,
        at_once,
    )
    progress = _Progress(setup.trials, setup.name, listeners.current())
    stopping = Event()

    def run(
        named: list[tuple[str, dict[str, Any]]], start: datetime, end: datetime
    ) -> list[Metrics | BaseException]:
        """Backtests of the (task run name, settings) pairs on Dask, in the order given; a backtest that
        raised is its exception. Once the study is stopping, nothing more is sent, and a batch that did not
        all complete is not told back (its trials count as interrupted, replaced on resume)."""
        if stopping.is_set():
            raise _Stopped
        futures = [
            trial_backtest.with_options(task_run_name=name).submit(
                params, start, end, config_file, symbols, data_dir
            )
            for name, params in named
        ]
        outcomes: list[Metrics | BaseException] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except Exception as e:  # recorded as a failed trial; the study goes on
                outcomes.append(e)
        if stopping.is_set() and any(isinstance(o, BaseException) for o in outcomes):
            raise _Stopped  # the cluster may be going away under it: not the trials' failures
        for (name, _), outcome in zip(named, outcomes, strict=True):
            if isinstance(outcome, BaseException) and (lost := _unreachable(outcome)):
                raise OrchestrationLost(
                    f"{name} could not reach Prefect or Dask ({lost}): the study stops, its finished "
                    "trials kept; run the same command again to resume it"
                ) from outcome
        return outcomes

    def one_window(window: Window, storage: optuna.storages.BaseStorage) -> WindowResult:
        current = open_study(
            f"{setup.name}/w{window.index}-{window.train_start:%Y%m%d}", storage, space, window.index
        )
        if before := len(finished(current)):
            logger.info("window %d resumes with %d trials finished", window.index, before)
        progress.resumed(window.index, before)
        search(
            current,
            space,
            lambda batch: run(
                [(f"w{window.index}-trial-{p.number}", p.params) for p in batch],
                window.train_start,
                window.train_end,
            ),
            window.index,
            progress.done,
            start_with=configured(setup.settings, space),
        )
        best = best_trial(current, space)
        tests = [
            *([(f"w{window.index}-test-trial-{best.number}", best.params)] if best else []),
            (f"w{window.index}-test-configured", {}),
        ]
        checked = run(tests, window.test_start, window.test_end)
        failed = next((o for o in checked if isinstance(o, BaseException)), None)
        if failed is not None:
            raise RuntimeError(f"window {window.index}: a test backtest failed: {failed}") from failed
        tested = [o for o in checked if isinstance(o, Metrics)]
        return window_result(current, space, window, tested[0] if best else None, tested[-1])

    with study_storage(setup.settings) as storage:
        results = side_by_side(lambda w: one_window(w, storage), setup.windows, at_once, stopping)
    result = OptimizationResult(
        study=setup.name,
        objective=space.objective,
        max_drawdown_pct=space.max_drawdown_pct,
        space=space,
        windows=results,
        chosen=results[-1].best_params or {},
    )
    progress.finish()
    directory = Path(output_dir) if output_dir else default_output_dir(setup.name)
    result = write_outputs(result, directory, config_file)
    _publish(result, Path(result.outputs["png"]))
    logger.info("study %s done: %s", setup.name, ", ".join(result.outputs.values()))
    return result


# What a trial raises when Prefect's API or the Dask cluster could not be reached. A backtest on replayed
# data makes no request of its own, so such an error is never the settings' failure: the study stops (its
# batch not told back, so no trial counts as failed) rather than recording every trial of the outage failed.
UNREACHABLE: tuple[type[BaseException], ...] = (httpx.TransportError, ConnectionError, CommClosedError)


class OrchestrationLost(RuntimeError):
    """A trial could not reach Prefect's API or the Dask cluster: the study stops and resumes on rerun."""


def _unreachable(error: BaseException) -> str | None:
    """What could not be reached, when that is why a trial failed (None when the trial itself failed): the
    trial says it on its worker, where the exception's chain is whole, and the flow reads it back."""
    if isinstance(error, OrchestrationLost):
        return str(error)
    lost = caused_by(error, *UNREACHABLE)
    return f"{type(lost).__name__}: {lost}" if lost is not None else None


class _Stopped(Exception):
    """A window's search stops because the study is stopping (another window failed, or Ctrl-C)."""


@dataclass(frozen=True)
class StudyProgress:
    """What a trial listener is told after each trial: the trial, and the whole study's count."""

    trial: TrialDone
    finished: int  # trials finished over every window, those of earlier runs of a resumed study included
    total: int


class _Progress:
    """The study's progress over windows searched side by side: the progress artifact, the log's warnings
    and the listener, updated one trial at a time."""

    def __init__(self, total: int, name: str, listener: Callable[[Any], None] | None) -> None:
        self.total, self.listener = total, listener
        self.logger = get_run_logger()
        self.tracker = create_progress_artifact(0.0, key=PROGRESS_KEY, description=f"optimize {name}: trials")
        self._lock = Lock()
        self._finished: dict[int, int] = {}

    def resumed(self, window: int, finished: int) -> None:
        with self._lock:
            self._finished[window] = finished

    def done(self, report: TrialDone) -> None:
        with self._lock:
            self._finished[report.window] = report.finished
            finished = sum(self._finished.values())
            update_progress_artifact(self.tracker, 100.0 * finished / self.total)
            if report.error is not None:
                self.logger.warning(
                    "window %d trial %d failed: %s", report.window, report.number, report.error
                )
            if self.listener is not None:
                self.listener(StudyProgress(report, finished, self.total))

    def finish(self) -> None:
        update_progress_artifact(self.tracker, 100.0)


def windows_to_fill(batch: int, windows: int) -> int:
    """How many windows to search at once: enough batches to keep every worker of the flow's Dask cluster
    busy, and one more so that no worker waits while a window tells its batch back and asks the next.
    One at a time with any other task runner."""
    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    if not isinstance(runner, DaskTaskRunner):
        return 1
    slots = sum(runner.client.nthreads().values())
    return max(1, min(windows, math.ceil(slots / batch) + 1))


def side_by_side(work: Callable[[W], R], items: Sequence[W], at_once: int, stopping: Event) -> list[R]:
    """`work(item)` for every item, at most `at_once` at a time, each in a thread with a copy of the
    caller's context (the flow run's: its tasks are this run's); the results in the items' order.

    The first exception sets `stopping` (in the thread that raised it, so no item starts after it) and is
    raised once the items already started have stopped (`work` checks `stopping`). On Ctrl-C (any
    BaseException in the caller) nothing is waited for: `stopping` is set and the exception goes on."""
    if at_once <= 1 or len(items) <= 1:
        return [work(item) for item in items]

    def guarded(item: W) -> R:
        if stopping.is_set():
            raise _Stopped
        try:
            return work(item)
        except BaseException:
            stopping.set()
            raise

    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="optimize-window")
    interrupted = False
    try:
        futures = [pool.submit(contextvars.copy_context().run, guarded, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        if stopping.is_set():  # an item raised: the rest stop (at once, those not started)
            wait(futures)
            errors = (f.exception() for f in futures)
            # the one that stopped the rest, not an item that stopped because of it
            raise next((e for e in errors if e is not None and not isinstance(e, _Stopped)), _Stopped())
        return [future.result() for future in futures]
    except BaseException as e:
        stopping.set()
        interrupted = not isinstance(e, Exception)
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)


def on_dask(address: str | None = None, workers: int | None = None) -> Flow[..., OptimizationResult]:
    """`optimize` on a given Dask cluster: an existing scheduler's `address`, or `workers` local processes."""
    return optimize.with_options(task_runner=dask_runner(address, workers))


def default_output_dir(study: str) -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("triplegain", appauthor=False)) / "optimize" / study


def write_outputs(result: OptimizationResult, directory: Path, config_file: str | None) -> OptimizationResult:
    """<study>.json (everything), <study>-settings.yaml (for --config) and <study>.png; returns the result
    with their paths in `outputs`."""
    from triplegain.optimize_plot import plot_optimization

    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / f"{result.study}.json",
        "settings": directory / f"{result.study}-settings.yaml",
        "png": directory / f"{result.study}.png",
    }
    result = result.model_copy(update={"outputs": {k: str(p) for k, p in paths.items()}})
    base = yaml.safe_load(Path(config_file).read_text()) if config_file else None
    paths["settings"].write_text(chosen_config(result, base if isinstance(base, dict) else None))
    plot_optimization(result, paths["png"])
    paths["json"].write_text(result.model_dump_json(indent=1))
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _publish(result: OptimizationResult, png: Path) -> None:
    rows = [
        {
            "window": w.index,
            "train": f"{w.train_start:%Y-%m-%d}..{w.train_end:%Y-%m-%d}",
            "test": f"{w.test_start:%Y-%m-%d}..{w.test_end:%Y-%m-%d}",
            "trials (failed)": f"{w.trials} ({w.failed})",
            f"{result.objective} in-sample": _fmt(w.objective_in),
            f"{result.objective} out-of-sample": _fmt(w.objective_out),
            "configured out-of-sample": _fmt(w.objective_default_out),
            "gap": _fmt(w.gap),
            "best settings": describe_params(w.best_params),
        }
        for w in result.windows
    ]
    create_table_artifact(rows, key=RESULT_KEY, description=f"optimize {result.study}: per window")
    create_markdown_artifact(
        inline_png(f"optimize {result.study}", "in-sample and out-of-sample", png.read_bytes()),
        key=PLOT_KEY,
        description=f"optimize {result.study}: in-sample against out-of-sample",
    )
