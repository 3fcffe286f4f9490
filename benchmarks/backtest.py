"""How long a backtest takes: one year of hourly cycles for 2 symbols with the offline model.

    .venv/bin/python benchmarks/backtest.py [--data ../shared/data/market] [--days 365] [--runs 3]

Prints the wall time per run, hours per second, and the time per simulated hour (cycle + portfolio check).
Needs the shared data for a full year (the bundled sample holds three months; it is used when --days fits).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
from pathlib import Path

from triplegain.backtest import run_backtest
from triplegain.market import ReplaySource
from triplegain.settings import load_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
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
    print(
        f"  strategy {result.metrics.total_return_pct:+.1f}%, {result.metrics.trades} trades; "
        f"buy and hold {result.baselines['buy_and_hold'].total_return_pct:+.1f}%"
    )


if __name__ == "__main__":
    main()
