"""How long a backtest takes: one year of hourly cycles for 2 symbols with the offline model.

    .venv/bin/python benchmarks/backtest.py [--data ../shared/data/market] [--days 365] [--runs 3]

Prints the wall time per run, hours per second, the time per simulated hour (cycle + portfolio check) and
the speed-up on the engine as of issue 13. Then where an hour goes: the indicators and the evidence (every
hour recomputes them over its own `lookback_candles` window, so that a backtest sees exactly what a live
cycle would), of that the time inside TA-Lib (the floor this design cannot go below), and the rest of the
cycle. Last, the peak memory (tracemalloc) of a quarter of the window against the whole: what grows with the
length of history is the curve the result returns. Then backtests as optimisation trials run them
(`reuse_analyses`: a worker keeps each hour's analysis for its next trials on the same data), each checked
identical to the plain backtest of the same settings.
Needs the shared data for a full year (the bundled sample holds three months; it is used when --days fits).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from triplegain import indicators
from triplegain.agents.evidence import gather_evidence
from triplegain.analysis_memo import AnalysisMemo
from triplegain.backtest import run_backtest
from triplegain.indicators import TaSeries, compute_indicators
from triplegain.market import ReplaySource
from triplegain.settings import Settings, load_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"
REFERENCE = "aa7de03"  # the engine as of issue 13, before any work on its speed (issue 15)
ROOT = Path(__file__).resolve().parents[1]
_TIME_ONE_RUN = """
import sys, time
from datetime import datetime
from pathlib import Path
from triplegain.backtest import run_backtest
from triplegain.market import ReplaySource
from triplegain.settings import load_settings
data, start, end = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
settings = load_settings(market={"data_dir": str(data)})
began = time.perf_counter()
run_backtest(ReplaySource(data), start, end, settings)
print(time.perf_counter() - began)
"""


def reference_seconds(revision: str, data: Path, start: datetime, end: datetime) -> float | None:
    """The same backtest timed on the engine at `revision` (a temporary git worktree, its code first on the
    path), so that the speed-up is measured on this machine under today's load; None without git."""
    with tempfile.TemporaryDirectory(prefix="triplegain-reference-") as tmp:
        tree = Path(tmp) / "tree"
        added = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            print(f"  (no reference: git worktree {revision}: {added.stderr.strip()})")
            return None
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            args = [sys.executable, "-c", _TIME_ONE_RUN, str(data), start.isoformat(), end.isoformat()]
            timed = subprocess.run(args, env=env, cwd=tmp, capture_output=True, text=True, check=True)
            return float(timed.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
                check=False,
            )


class _TimedTalib:
    """TA-Lib as `triplegain.indicators` calls it, adding up the time spent inside its functions."""

    def __init__(self, real: Any) -> None:
        self.real, self.seconds = real, 0.0

    def __getattr__(self, name: str) -> Any:
        function = getattr(self.real, name)
        if not callable(function):
            return function

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        return timed


def indicator_floor(
    source: ReplaySource, settings: Settings, at: datetime, repeats: int = 200
) -> tuple[float, float]:
    """Seconds per simulated hour spent on the indicators and the evidence, every symbol, and of that the
    time inside TA-Lib's functions (the arithmetic no rewrite of the Python around it can remove)."""
    windows = [source.candles(s, at, settings.market.lookback_candles) for s in settings.market.symbols]

    def analyse() -> float:
        began = time.perf_counter()
        for _ in range(repeats):
            for candles in windows:
                series = TaSeries(candles)
                compute_indicators(candles, settings.indicators, series)
                gather_evidence(candles, settings.indicators, settings.technical, series)
        return (time.perf_counter() - began) / repeats

    whole = analyse()
    timed = _TimedTalib(indicators.talib)
    indicators.talib = timed  # type: ignore[assignment]
    try:
        analyse()
    finally:
        indicators.talib = timed.real
    return whole, timed.seconds / repeats


def peak_memory(data: Path, start: datetime, end: datetime, settings: Settings) -> tuple[float, int]:
    """Peak traced bytes of one backtest (its data already read), and its simulated hours."""
    source = ReplaySource(data)
    for symbol in settings.market.symbols:
        source.series(symbol)
    tracemalloc.start()
    try:
        result = run_backtest(source, start, end, settings)
        return tracemalloc.get_traced_memory()[1], result.hours
    finally:
        tracemalloc.stop()


def trials_on_the_same_data(
    data: Path, start: datetime, end: datetime, plain_seconds: float, memory: bool
) -> None:
    """Backtests as an optimisation's trials run them (`reuse_analyses`, one process, one source): the
    first, one whose settings change only what the analysis never reads, one that changes a section it
    reads but not the indicators; each timed, checked identical to its plain backtest. Then what the kept
    analyses of one trial weigh (traced, on a fresh source)."""
    source = ReplaySource(data)
    kinds = {
        "the first trial (computes and keeps every analysis)": {},
        "portfolio.drift_threshold_pct 7.5 (whole analyses reused)": {
            "portfolio": {"drift_threshold_pct": 7.5}
        },
        "risk.derisk_from_pct 8 (market reads and indicators reused)": {"risk": {"derisk_from_pct": 8}},
    }
    print("  trials on the same data (reuse_analyses, as each optimize worker runs them):")
    for label, overrides in kinds.items():
        settings = load_settings(market={"data_dir": str(data)}, **overrides)
        memo = AnalysisMemo(source, settings)
        hits, misses = memo.hits, memo.misses
        began = time.perf_counter()
        reused = run_backtest(source, start, end, settings, reuse_analyses=True)
        seconds = time.perf_counter() - began
        plain = run_backtest(ReplaySource(data), start, end, settings)
        print(
            f"    {label}: {seconds:.1f} s, {reused.hours / seconds:,.0f} hours/s, "
            f"{plain_seconds / seconds:.2f}x a plain backtest; {memo.hits - hits:,} lookups found, "
            f"{memo.misses - misses:,} computed; identical to its plain backtest: "
            f"{reused.model_dump() == plain.model_dump()}"
        )
    if memory:
        fresh = ReplaySource(data)
        weights = []
        for overrides in ({}, {"risk": {"derisk_from_pct": 8}}):  # reads and analyses, then analyses only
            settings = load_settings(market={"data_dir": str(data)}, **overrides)
            before = AnalysisMemo(fresh, settings).sizes
            tracemalloc.start()
            result = run_backtest(fresh, start, end, settings, reuse_analyses=True)
            del result
            weights.append((tracemalloc.get_traced_memory()[0], before, AnalysisMemo(fresh, settings).sizes))
            tracemalloc.stop()
        (first, _, (reads, analyses)), (second, (_, before), (_, after)) = weights
        per_analysis = second / (after - before)
        per_read = (first - analyses * per_analysis) / reads
        print(
            f"    kept: {first / 1e6:.0f} MB after the first trial ({reads:,} market reads, {analyses:,} "
            f"analyses), {second / 1e6:.0f} MB more after the risk trial: about {per_read / 1e3:.1f} KB a "
            f"market read, {per_analysis / 1e3:.1f} KB an analysis"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--reference", default=REFERENCE, help="git revision to time the same run on ('' to skip)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the two traced-memory runs")
    parser.add_argument("--no-trials", action="store_true", help="skip the trials reusing analyses")
    args = parser.parse_args()
    settings = load_settings(market={"data_dir": str(args.data)})
    source = ReplaySource(args.data)
    end = source.end(settings.market.symbols)
    start = end - timedelta(days=args.days)
    times = []
    for _ in range(args.runs):
        began = time.perf_counter()
        result = run_backtest(ReplaySource(args.data), start, end, settings)
        times.append(time.perf_counter() - began)
    best, median = min(times), statistics.median(times)
    print(
        f"backtest {start:%Y-%m-%d} to {end:%Y-%m-%d}: {result.hours} hourly cycles, 2 symbols, offline model"
    )
    print(f"  runs {', '.join(f'{t:.1f} s' for t in times)}; median {median:.1f} s, best {best:.1f} s")
    print(
        f"  {result.hours / median:,.0f} simulated hours per second, "
        f"{median / result.hours * 1000:.2f} ms per hour"
    )
    if args.reference:
        reference = [reference_seconds(args.reference, args.data, start, end) for _ in range(args.runs)]
        if all(r is not None for r in reference):
            before = statistics.median(r for r in reference if r is not None)
            print(
                f"  the engine at {args.reference}: median {before:.1f} s, "
                f"{result.hours / before:,.0f} hours/s; speed-up {before / median:.2f}x"
            )
    floor, arithmetic = indicator_floor(source, settings, end)
    print(
        f"  indicators and evidence alone: {floor * 1000:.2f} ms per hour, so at most {1 / floor:,.0f} "
        f"hours/s while each hour recomputes its own window; inside TA-Lib {arithmetic * 1000:.2f} ms, "
        f"at most {1 / arithmetic:,.0f} hours/s"
    )
    rest = median / result.hours - floor
    print(
        f"  the rest of the cycle (snapshot, reports, regime, decision, bus, coordinator, risk, portfolio "
        f"check): {rest * 1000:.2f} ms per hour, so at most {1 / rest:,.0f} hours/s with free indicators"
    )
    if not args.no_trials:
        trials_on_the_same_data(args.data, start, end, median, not args.no_memory)
    if not args.no_memory:
        quarter, quarter_hours = peak_memory(args.data, end - (end - start) / 4, end, settings)
        whole, whole_hours = peak_memory(args.data, start, end, settings)
        print(
            f"  peak memory: {quarter / 1e6:.1f} MB for {quarter_hours} hours, {whole / 1e6:.1f} MB for "
            f"{whole_hours}: {(whole - quarter) / (whole_hours - quarter_hours):,.0f} bytes per extra hour"
        )
    print(
        f"  strategy {result.metrics.total_return_pct:+.1f}%, {result.metrics.trades} trades; "
        f"buy and hold {result.baselines['buy_and_hold'].total_return_pct:+.1f}%"
    )


if __name__ == "__main__":
    main()
