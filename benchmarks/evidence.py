"""Does agreeing technical evidence pay for a trade? The measurement behind `decision.offline.evidence_edge`.

Every third hour of the shared history, for BTC/USDT and XRP/USDT: the twelve votes of the offline technical
evidence (`triplegain.agents.evidence`, four families on 1h/4h/1d), and what a long entered at that close
would have made: the offline model's stop (2 ATR, within 0.5%..5%) and target (2x the stop), at most 72
hours, net of the 0.72% round trip (0.26% fee and 0.1% slippage, both legs). Printed: the mean net result in
percent by net vote count (long minus short votes) and half-year, and how many entries each cell holds.

A cell that stays positive across half-years would be evidence worth trading on; the default credits the
evidence with nothing because none does (see the README, "How it decides").

Usage: python benchmarks/evidence.py [--data ../shared/data/market] [--step 3]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import talib

from triplegain.agents.evidence import gather_evidence
from triplegain.market import ReplaySource
from triplegain.settings import load_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"
LOOKBACK, HOLD_HOURS, COST = 1000, 72, 0.0072
BUCKETS = ((-12, -6), (-5, -2), (-1, 1), (2, 5), (6, 7), (8, 9), (10, 12))


def long_result(high: np.ndarray, low: np.ndarray, close: np.ndarray, i: int, stop: float) -> float:
    """A long at close[i]: -stop at the stop, +2 stop at the target, else the close after HOLD_HOURS."""
    entry, target = close[i], 2 * stop
    for j in range(i + 1, i + 1 + HOLD_HOURS):
        if low[j] <= entry * (1 - stop):
            return -stop
        if high[j] >= entry * (1 + target):
            return target
    return float(close[i + HOLD_HOURS] / entry - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--step", type=int, default=3, help="hours between entries")
    args = parser.parse_args()
    settings, source = load_settings(), ReplaySource(args.data)
    cells: dict[tuple[int, str], list[float]] = defaultdict(list)
    for symbol in settings.market.symbols:
        s = source.series(symbol)
        atr = talib.ATR(s.high, s.low, s.close, 14)
        for i in range(LOOKBACK, len(s) - HOLD_HOURS - 1, args.step):
            evidence = gather_evidence(
                s.slice(i - LOOKBACK + 1, i + 1), settings.indicators, settings.technical
            )
            net = evidence.count(1) - evidence.count(-1)
            stop = min(max(2 * atr[i] / s.close[i], 0.005), 0.05)
            at = datetime.fromtimestamp(int(s.timestamps[i]), tz=UTC)
            half = f"{at.year}H{1 if at.month <= 6 else 2}"
            bucket = next(k for k, (lo, hi) in enumerate(BUCKETS) if lo <= net <= hi)
            cells[(bucket, half)].append(long_result(s.high, s.low, s.close, i, stop) - COST)
    halves = sorted({h for _, h in cells})
    print("mean net result of a long, percent (entries), by net vote count and half-year")
    print(f"{'net votes':>10} " + " ".join(f"{h:>14}" for h in halves))
    for k, (lo, hi) in enumerate(BUCKETS):
        row = []
        for h in halves:
            values = cells.get((k, h), [])
            row.append(f"{np.mean(values) * 100:+6.2f} ({len(values):4d})" if values else f"{'-':>14}")
        print(f"{lo:>4}..{hi:<4} " + " ".join(row))
    positive = sum(np.mean(v) > 0 for v in cells.values() if v)
    print(f"cells with a positive mean: {positive} of {sum(1 for v in cells.values() if v)}")


if __name__ == "__main__":
    main()
