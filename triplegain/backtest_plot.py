"""The backtest picture: equity beside the baselines, drawdown beneath (PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt
import numpy as np

from triplegain.backtest import BacktestResult

LABELS = {"buy_and_hold": "buy and hold (target allocation)", "drift_rebalanced": "rebalanced on drift only"}


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """Write the plot to `path` (PNG) and return it."""
    times = np.array([t.replace(tzinfo=None) for t in result.times], dtype="datetime64[s]")  # UTC
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    top.plot(times, result.equity, label=f"TripleGain ({', '.join(result.decided_by)})", linewidth=1.6)
    for name, curve in result.baseline_equity.items():
        top.plot(times, curve, label=LABELS.get(name, name), linewidth=1.0, alpha=0.8)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
