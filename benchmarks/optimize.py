"""How much a second Dask worker buys `optimize`: the same study on 1 and on 2 local worker processes.

    .venv/bin/python benchmarks/optimize.py [--data ../shared/data/market] [--trials 8] [--train-days 30]
                                            [--readme-space]

Prints the wall time of each, the speed-up, and checks the two studies are identical (same seed and space).
Each run is a fresh study in a temporary database; the temporary Prefect server's start is not counted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

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


if __name__ == "__main__":
    main()
