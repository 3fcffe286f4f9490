"""The walk-forward picture: per window, the objective in-sample (best trial on its training window), out of
sample (those settings on the test window) and the configured settings on the same test window (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt
import numpy as np

from triplegain.optimize import OptimizationResult

SERIES = (
    ("objective_in", "best trial, training window (in-sample)", "tab:blue"),
    ("objective_out", "its settings, test window (out-of-sample)", "tab:orange"),
    ("objective_default_out", "configured settings, test window", "tab:gray"),
)


def plot_optimization(result: OptimizationResult, path: Path) -> Path:
    """Write the bars to `path` (PNG) and return it (no feasible trial: no blue or orange bar)."""
    windows = result.windows
    x = np.arange(len(windows))
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(windows) + 3), 4.8), constrained_layout=True)
    for i, (field, label, color) in enumerate(SERIES):
        values = [getattr(w, field) for w in windows]
        heights = [v if v is not None else np.nan for v in values]
        ax.bar(x + (i - 1) * width, heights, width, label=label, color=color)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"test {w.test_start:%Y-%m-%d}" for w in windows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(result.objective)
    limit = f", max drawdown {result.max_drawdown_pct:g}%" if result.max_drawdown_pct else ""
    ax.set_title(
        f"walk-forward {result.study}: {result.objective}{limit}\n"
        f"searched settings beat the configured ones in {result.wins()} of {len(windows)} test windows",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
