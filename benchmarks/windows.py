"""The default settings over half-year windows of the shared market history, against the two baselines.

Each window is its own backtest from a fresh 10,000 USDT account (the first needs 300 hours of history, so
2020-09 starts on the 3rd of October): return, max drawdown, Sharpe, trades, fees, per window and over the
whole of 2020-10..2024-06, for TripleGain and for buying the target allocation and holding it or rebalancing
it on drift. It also counts the hours each confirmed regime held for BTC/USDT and XRP/USDT over the whole.
This is how decisions are judged (issue 13): tune on earlier windows, check on later ones.

Usage: python benchmarks/windows.py [--data ../shared/data/market] [--whole-only] [--regimes]
       [--set portfolio.drift_threshold_pct=7.5 ...]   (a candidate setting, to compare walk-forward)
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from triplegain.backtest import run_backtest
from triplegain.backtest_metrics import Metrics
from triplegain.cycle import analyze_symbol
from triplegain.market import ReplaySource
from triplegain.optimize import merged, nested
from triplegain.settings import load_settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"
FIRST = datetime(2020, 10, 3, tzinfo=UTC)
LAST = datetime(2024, 6, 30, 23, tzinfo=UTC)


def windows() -> list[tuple[datetime, datetime]]:
    """Half-years from FIRST to LAST (the first and last are partial)."""
    edges = [FIRST] + [datetime(y, m, 1, tzinfo=UTC) for y in range(2021, 2025) for m in (1, 7)] + [LAST]
    edges = sorted(e for e in edges if FIRST <= e <= LAST)
    return [(a, b - timedelta(hours=1) if b != LAST else b) for a, b in pairwise(edges)]


def row(label: str, m: Metrics) -> str:
    return (
        f"  {label:<22} {m.total_return_pct:+8.2f}% {m.max_drawdown_pct:7.2f}% {m.sharpe:6.2f} "
        f"{m.trades:6d} {m.fees_paid:9.2f}"
    )


def report(data: Path, start: datetime, end: datetime, overrides: dict[str, Any]) -> None:
    settings = load_settings(**merged(overrides, {"market": {"data_dir": str(data)}}))
    result = run_backtest(ReplaySource(data), start, end, settings)
    months = (end - start) / timedelta(days=30.44)
    print(f"{start:%Y-%m-%d} .. {end:%Y-%m-%d} ({result.hours} h, {months:.1f} months)")
    print(f"  {'':<22} {'return':>9} {'max DD':>8} {'Sharpe':>6} {'trades':>6} {'fees USD':>9}")
    print(row("TripleGain", result.metrics) + f"   {result.metrics.trades / months:.0f} trades/month")
    for name, m in result.baselines.items():
        print(row(name, m))


def regime_hours(data: Path) -> None:
    """Hours each confirmed regime held, per symbol, over the whole history (hysteresis carried)."""
    settings = load_settings(market={"data_dir": str(data)})
    source = ReplaySource(data)
    for symbol in settings.market.symbols:
        previous, held = None, Counter[str]()
        at = FIRST
        while at <= LAST:
            a = analyze_symbol(source, symbol, at, previous, settings)
            if a.regime is not None:
                previous = a.regime.state
                held[a.regime.regime.value] += 1
            at += timedelta(hours=1)
        print(f"{symbol} regime hours: " + ", ".join(f"{k} {v}" for k, v in held.most_common()))


def overrides_from(pairs: list[str]) -> dict[str, Any]:
    """`section.key=value` pairs as nested keyword overrides of `load_settings` (values parsed as YAML)."""
    flat: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set needs section.key=value, not {pair!r}")
        flat[key] = yaml.safe_load(value)
    return nested(flat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--whole-only", action="store_true")
    parser.add_argument("--regimes", action="store_true", help="also count the hours of each regime")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings")
    args = parser.parse_args()
    overrides = overrides_from(args.settings)
    if overrides:
        print(f"settings overridden: {overrides}")
    if not args.whole_only:
        for start, end in windows():
            report(args.data, start, end, overrides)
    report(args.data, FIRST, LAST, overrides)
    if args.regimes:
        regime_hours(args.data)


if __name__ == "__main__":
    main()
