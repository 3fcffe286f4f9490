"""Human-readable views of a cycle report: markdown for the Prefect artifact, rows for the CLI table."""

from __future__ import annotations

from decimal import Decimal

from triplegain.models.cycle import CycleReport, Execution, SymbolOutcome
from triplegain.models.trading import QUOTE, Portfolio

SUMMARY_COLUMNS = ("symbol", "price", "regime", "TA bias", "signal", "verdict", "order")
WATCH_COLUMNS = ("symbol", "price", "exits and orders")
WATCH = "market-watch"


def summary_columns(report: CycleReport) -> tuple[str, ...]:
    """A cycle's columns, or a market watch's (it analyses nothing: price and what it sold)."""
    return WATCH_COLUMNS if report.decided_by == WATCH else SUMMARY_COLUMNS


def summary_rows(report: CycleReport) -> list[tuple[str, ...]]:
    """One row per symbol under `summary_columns`: for a cycle price, regime, TA bias, signal, risk verdict
    and order; for a watch price and its exits."""
    rows = [_row(o) for o in report.symbols]
    if report.decided_by == WATCH:
        return [(symbol, price, orders) for symbol, price, *_, orders in rows]
    return rows


def _row(o: SymbolOutcome) -> tuple[str, ...]:
    if o.error is not None:
        return (o.symbol, "-", "-", "-", "-", "-", f"skipped: {o.error}")
    signal = f"{o.signal.action} {o.signal.confidence:.2f}" if o.signal else "-"
    verdict = "-"
    if o.verdict is not None:
        codes = ", ".join(r.code for r in o.verdict.rejections + o.verdict.modifications)
        verdict = f"{o.verdict.status}" + (f" ({codes})" if codes else "")
    orders = [_execution(e) for e in o.executions()]
    return (
        o.symbol,
        f"{o.price}",
        o.regime.regime.value if o.regime else "-",
        o.technical.bias.value if o.technical else "-",
        signal,
        verdict,
        "; ".join(orders) or "-",
    )


def _execution(e: Execution) -> str:
    order = e.order
    text = f"{order.side} {order.size} {order.status}"
    if e.fill is not None:
        text += f" @ {e.fill.price} fee {e.fill.fee:.4f}"
    if e.closed_positions:
        pnl = sum((p.realized_pnl or Decimal(0) for p in e.closed_positions), Decimal(0))
        text += f" ({e.closed_positions[0].close_reason}, P&L {pnl:+.2f})"
    if order.reason:
        text += f": {order.reason}"
    return text


def portfolio_lines(report: CycleReport) -> list[str]:
    """Balances, equity and open positions after the cycle."""
    p = report.portfolio
    change = p.equity - report.starting_equity
    lines = [
        "balances: "
        + ", ".join(f"{asset} {amount:.8f}".rstrip("0").rstrip(".") for asset, amount in p.balances.items()),
        f"equity: {p.equity:.2f} USDT ({change:+.2f} this cycle), exposure {p.exposure():.2f} USDT",
    ]
    for pos in p.positions:
        lines.append(
            f"open: {pos.symbol} {pos.size} @ {pos.entry_price} stop {pos.stop_loss} target {pos.take_profit}"
        )
    if report.hodl_bags or report.hodl_pending_usd:
        lines.append(hodl_line(report.hodl_bags, report.hodl_pending_usd))
    return lines


def hodl_line(bags: dict[str, Decimal], pending_usd: dict[str, Decimal]) -> str:
    """The hodl bags in one line: what each holds, and what waits to be bought."""
    held = ", ".join(f"{a} {v:.8f}".rstrip("0").rstrip(".") for a, v in bags.items()) or "empty"
    waiting = ", ".join(f"{a} {v:.2f} USD" for a, v in pending_usd.items())
    return f"hodl bags (never sold): {held}" + (f"; put aside, not yet bought: {waiting}" if waiting else "")


def render_markdown(report: CycleReport) -> str:
    """The cycle as a markdown document: per symbol signal, verdict and order; then the portfolio."""
    columns = summary_columns(report)
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    rows = "\n".join(
        "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in summary_rows(report)
    )
    parts = [
        f"# {'Market watch' if report.decided_by == WATCH else 'Trading cycle'} {report.cycle_id}",
        f"As of **{report.timestamp.isoformat()}**, status **{report.status}**, mode {report.mode}, "
        f"decided by `{report.decided_by}`; "
        f"{report.messages} bus messages, {report.dead_letters} dead letters, "
        f"LLM cost {report.llm_cost_usd:.4f} USD, degradation {report.degradation}.",
        header + "\n" + rows,
        "## Portfolio\n" + "\n".join(f"- {line}" for line in portfolio_lines(report)),
    ]
    reasoning = [r for o in report.symbols if (r := reasoning_lines(o))]
    if reasoning:
        parts.append("## Reasoning\n\n" + "\n\n".join("\n".join(r) for r in reasoning))
    if report.notes:
        parts.append("## Notes\n" + "\n".join(f"- {e}" for e in report.notes))
    return "\n\n".join(parts) + "\n"


def reasoning_lines(o: SymbolOutcome) -> list[str]:
    """Why the cycle did what it did for one symbol, as markdown: the analysis, each model's vote with its
    reasoning, the agreement, the resolution of conflicts and the risk engine's reasons."""
    if o.signal is None and o.verdict is None:
        return []
    lines = [f"### {o.symbol}"]
    if o.technical is not None:
        lines.append(
            f"- technical: {o.technical.bias.value}, confidence {o.technical.confidence:.2f}; "
            f"{o.technical.reasoning}"
        )
    if o.regime is not None:
        lines.append(f"- regime: {o.regime.regime.value}, confidence {o.regime.confidence:.2f}")
    if o.signal is not None:
        sig = o.signal
        lines.append(
            f"- decision: **{sig.action}** at {sig.confidence:.2f}, {sig.agreement} agreement "
            f"({sig.consensus_strength:.0%} of {sig.total_models} model(s)); {sig.reasoning}"
        )
        lines += [
            f"  - {v.model}: {v.action} {v.confidence:.2f}: {v.reasoning.replace(chr(10), ' ')}"
            for v in sig.model_votes
        ]
    if o.resolution is not None:
        r = o.resolution
        kinds = ", ".join(str(c.type) for c in r.conflicts) or "none"
        lines.append(
            f"- conflicts ({kinds}): {r.action} by {r.decided_by}, {r.confidence:.2f}; {r.reasoning}"
        )
    if o.verdict is not None:
        reasons = o.verdict.rejections + o.verdict.modifications + o.verdict.warnings
        lines.append(
            f"- risk: {o.verdict.status}"
            + ("; " + "; ".join(f"{r.code}: {r.message}" for r in reasons) if reasons else "")
        )
    return lines


def allocation_rows(portfolio: Portfolio) -> list[dict[str, str]]:
    """The positions-and-allocation table: each asset's value and share of equity, then each open position.

    Every row has the same columns (the Prefect UI renders a table artifact from them).
    """
    equity = portfolio.equity
    rows = []
    for asset, amount in portfolio.balances.items():
        price = Decimal(1) if asset == QUOTE else portfolio.prices.get(f"{asset}/{QUOTE}")
        value = amount * price if price is not None else None
        share = f"{value / equity * 100:.2f}" if value is not None and equity else "-"
        rows.append(_table_row("asset", asset, amount, price, value, share))
    for pos in portfolio.positions:
        price = portfolio.prices.get(pos.symbol)
        value = pos.size * price if price is not None else None
        share = f"{value / equity * 100:.2f}" if value is not None and equity else "-"
        row = _table_row("position", pos.symbol, pos.size, price, value, share)
        row |= {
            "entry": f"{pos.entry_price}",
            "unrealized_pnl": f"{pos.unrealized_pnl(price):+.2f}" if price is not None else "-",
            "stop_loss": f"{pos.stop_loss}",
            "take_profit": f"{pos.take_profit}",
        }
        rows.append(row)
    return rows


def _table_row(
    kind: str, name: str, amount: Decimal, price: Decimal | None, value: Decimal | None, share: str
) -> dict[str, str]:
    return {
        "kind": kind,
        "name": name,
        "amount": f"{amount:f}",
        "price": f"{price}" if price is not None else "-",
        "value_usdt": f"{value:.2f}" if value is not None else "-",
        "allocation_pct": share,
        "entry": "-",
        "unrealized_pnl": "-",
        "stop_loss": "-",
        "take_profit": "-",
    }
