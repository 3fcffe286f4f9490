"""How much a second Dask worker buys `optimize`: the same study on 1 and on 2 local worker processes.

    .venv/bin/python benchmarks/optimize.py [--data ../shared/data/market] [--trials 8] [--train-days 30]
                                            [--readme-space] [--slots 8 [--trial-seconds 1]]

Prints the wall time of each, the speed-up, and checks the two studies are identical (same seed and space).
Each run is a fresh study in a temporary database; the temporary Prefect server's start is not counted.

With --slots N it measures instead what the search itself makes of more workers than this machine has
cores: N Dask worker threads in this process, each trial a sleep of --trial-seconds standing for a backtest
on another machine, one window at a time against windows side by side (the default). It prints the wall
times and the most trials that ran at once.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--train-days", type=int, default=30)
    parser.add_argument(
        "--readme-space",
        action="store_true",
        help="search the README's example params (technical and decision keys too: trials that change the "
        "analysis reuse less of it)",
    )
    parser.add_argument("--slots", type=int, help="measure the search on this many sleeping worker threads")
    parser.add_argument("--trial-seconds", type=float, default=1.0, help="each sleeping trial's length")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="triplegain-bench-optimize-"))
    os.environ["TRIPLEGAIN_DATABASE_URL"] = f"sqlite:///{tmp / 'tg.db'}"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    space = {
        "trials": args.trials,
        "batch": 4,
        "seed": 1,
        "train_days": args.train_days,
        "test_days": 15,
        "start": "2024-01-01T00:00Z",
        "end": "2024-03-31T23:00Z",
        "params": {
            "portfolio.drift_threshold_pct": {"low": 5, "high": 20, "step": 2.5},
            "risk.derisk_from_pct": {"low": 5, "high": 15},
        },
    }
    if args.readme_space:
        space["params"] = {
            **space["params"],
            "decision.offline.evidence_edge": {"low": 0.3, "high": 1.0, "log": True},
            "technical.min_net_votes": {"choices": [3, 4, 5]},
        }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(space))

    from prefect.testing.utilities import prefect_test_harness

    from flows.optimize import on_dask

    if args.slots:
        with prefect_test_harness(server_startup_timeout=120):
            sleeping_trials(path, args.data, args.slots, args.trial_seconds, args.trials)
        return
    with prefect_test_harness(server_startup_timeout=120):
        results, times = {}, {}
        for workers in (1, 2):
            began = time.perf_counter()
            results[workers] = on_dask(workers=workers)(
                str(path), data_dir=str(args.data), study=f"w{workers}", output_dir=str(tmp / f"w{workers}")
            )
            times[workers] = time.perf_counter() - began
    windows = len(results[1].windows)
    backtests = windows * (args.trials + 2)
    print(
        f"optimize: {windows} windows x {args.trials} trials ({args.train_days}-day training), "
        f"{backtests} backtests"
    )
    for workers, seconds in times.items():
        print(f"  {workers} worker(s): {seconds:.1f} s, {backtests / seconds:.2f} backtests/s")
    print(f"  speed-up with 2 workers: {times[1] / times[2]:.2f}x on {os.cpu_count()} cores")
    same = [w.model_dump(exclude={"index"}) for w in results[1].windows] == [
        w.model_dump(exclude={"index"}) for w in results[2].windows
    ]
    print(f"  identical studies on 1 and 2 workers: {same}")


class _Sleeping:
    """A trial that sleeps instead of backtesting (a stand-in for a backtest on another machine); its
    Sharpe is best at a drift threshold of 12.5."""

    def __init__(self, overrides: dict[str, Any], seconds: float) -> None:
        self.drift = float(overrides.get("portfolio", {}).get("drift_threshold_pct", 10.0))
        self.seconds = seconds

    def run(self, reuse_analyses: bool = False) -> Any:
        from triplegain.backtest_metrics import Metrics

        time.sleep(self.seconds)
        sharpe = 2.0 - abs(self.drift - 12.5) / 5
        flat = {"start_equity": 1e4, "end_equity": 1e4, "total_return_pct": 0.0, "annualised_return_pct": 0.0}
        metrics = Metrics(**flat, max_drawdown_pct=5.0, sharpe=sharpe, sortino=sharpe)
        return SimpleNamespace(metrics=metrics)


def _sleeping_setup(
    *args: Any, overrides: dict[str, Any] | None = None, seconds: float, **kwargs: Any
) -> Any:
    return _Sleeping(overrides or {}, seconds)


def most_at_once(flow_run_id: Any) -> int:
    """The most task runs of the flow run that were running at the same moment (from their records)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    edges = sorted(
        [(r.start_time, 1) for r in runs if r.start_time and r.end_time]
        + [(r.end_time, -1) for r in runs if r.start_time and r.end_time]
    )
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def sleeping_trials(path: Path, data: Path, slots: int, seconds: float, trials: int) -> None:
    """The study on `slots` worker threads whose trials sleep: one window at a time, then side by side."""
    from prefect_dask import DaskTaskRunner

    import flows.optimize as module

    module.prepare_backtest = functools.partial(_sleeping_setup, seconds=seconds)  # type: ignore[assignment]
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": slots, "processes": False})
    times, peaks, results = {}, {}, {}
    for label, at_once in (("one window at a time", 1), ("side by side (default)", None)):
        began = time.perf_counter()
        state = module.optimize.with_options(task_runner=runner)(
            str(path), data_dir=str(data), study=label.split()[0], windows_at_once=at_once, return_state=True
        )
        times[label] = time.perf_counter() - began
        results[label], peaks[label] = state.result(), most_at_once(state.state_details.flow_run_id)
    windows = len(next(iter(results.values())).windows)
    print(
        f"optimize on {slots} worker threads, trials sleeping {seconds:g} s: "
        f"{windows} windows x {trials} trials"
    )
    for label in times:
        print(f"  {label}: {times[label]:.1f} s, at most {peaks[label]} backtests at once")
    first, second = results.values()
    same = [w.best_params for w in first.windows] == [w.best_params for w in second.windows]
    print(f"  identical studies: {same}")


if __name__ == "__main__":
    main()
