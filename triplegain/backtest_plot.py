"""The backtest picture: equity beside the baselines, drawdown beneath (PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from triplegain.backtest import BacktestResult

LABELS = {"buy_and_hold": "buy and hold (target allocation)", "drift_rebalanced": "rebalanced on drift only"}
# Baselines often run on top of each other: a style each keeps both visible where they coincide.
STYLES = {"buy_and_hold": ("tab:gray", "--"), "drift_rebalanced": ("tab:green", ":")}


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """Write the plot to `path` (PNG) and return it."""
    times = np.array([t.replace(tzinfo=None) for t in result.times], dtype="datetime64[s]")  # UTC
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    top.plot(times, result.equity, label=f"TripleGain ({', '.join(result.decided_by)})", linewidth=1.6)
    for name, curve in result.baseline_equity.items():
        color, style = STYLES.get(name, (None, "-."))
        top.plot(times, curve, label=LABELS.get(name, name), color=color, linestyle=style, linewidth=1.4)
    top.set_ylabel("equity (USDT)")
    top.set_title(
        f"{', '.join(result.symbols)}  {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}  "
        f"return {result.metrics.total_return_pct:+.1f}%, max drawdown {result.metrics.max_drawdown_pct:.1f}%"
    )
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    equity = np.asarray(result.equity)
    drawdown = (equity / np.maximum.accumulate(equity) - 1) * 100
    bottom.fill_between(times, drawdown, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    locator = mdates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]  # a few dates, never overlapping
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
