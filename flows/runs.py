"""What the flows that move the account share: the time a run is as of, a stored report read back,
prices, the one coordinate-and-persist path of a market watch and a DCA batch, and their artifacts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.live import live_keys, reconciled
from tasks.coordination import coordinate
from tasks.live import emit_urgent_events
from tasks.market import fetch_snapshot
from tasks.storage import load_account, load_report, save_cycle
from triplegain.cycle import build_report
from triplegain.cycle_types import AccountState, Coordination, CoordinationInput, SymbolAnalysis
from triplegain.errors import CycleError
from triplegain.market import ReplaySource, replay_clock, shared_source
from triplegain.models.cycle import CycleReport
from triplegain.rebalance import RebalanceTrade
from triplegain.report import allocation_rows, render_markdown
from triplegain.settings import Settings
from triplegain.storage.cycles import CycleRecord


def default_cycle_time(settings: Settings) -> datetime:
    """Now for a live source; on replay data the replay clock: the hour after the account's last cycle
    (a fresh account starts `market.replay_start_days` before the data ends), stopping at the data's end.
    A scheduled cycle, watch, portfolio check or DCA batch on replay data runs at this time."""
    source = shared_source(settings.market)
    if isinstance(source, ReplaySource):
        m = settings.market
        last = load_account(settings).last_cycle_at
        return replay_clock(source, m.symbols, last, m.replay_start_days, m.min_candles)
    return datetime.now(UTC)


def stored_report(run_key: str, settings: Settings) -> CycleReport | None:
    """The report of a run that already happened, marked as read back."""
    stored = load_report(run_key, settings)
    return stored.model_copy(update={"replayed": True}) if stored is not None else None


def inline_png(title: str, alt: str, png: bytes) -> str:
    """Markdown showing `png` under a `title` heading, the image inline (a data URI): the Prefect UI shows
    it with no file server."""
    return f"# {title}\n\n![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})\n"


def publish_artifacts(report: CycleReport, key: str, positions_key: str) -> None:
    """The run's markdown report and its positions-and-allocation table, in the Prefect UI."""
    create_markdown_artifact(key=key, markdown=render_markdown(report), description=report.cycle_id)
    create_table_artifact(
        key=positions_key,
        table=allocation_rows(report.portfolio),
        description=f"{report.cycle_id}: positions and allocation",
    )


def price_snapshots(settings: Settings, at: datetime, symbols: list[str]) -> list[SymbolAnalysis]:
    """Each symbol's market snapshot fetched at once (no analysis); CycleError when none could be had."""
    futures = [(s, fetch_snapshot.submit(s, at, settings)) for s in symbols]
    analyses = []
    for symbol, future in futures:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            analyses.append(SymbolAnalysis(symbol=symbol, error=str(outcome)))
        else:
            analyses.append(SymbolAnalysis(symbol=symbol, snapshot=outcome))
    if all(a.snapshot is None for a in analyses):
        raise CycleError("no price for any symbol: " + "; ".join(a.error or "" for a in analyses))
    return analyses


def settle_account(
    settings: Settings,
    run_key: str,
    at: datetime,
    account: AccountState,
    decided_by: str,
    notices: Sequence[str] = (),
    trades: Sequence[RebalanceTrade] = (),
    reported_runs: Sequence[int] = (),
    dca_batch: tuple[str, int] | None = None,
    flow_run_id: int | None = None,
) -> tuple[CycleReport, Coordination]:
    """A run that analyses nothing (market watch, DCA batch): prices, exits, breakers and `trades` through
    the coordinator, committed in one transaction with the run's end (`flow_run_id`); it does not become
    the account's last cycle. On a live account it reconciles first and fails (CycleError, changing
    nothing) when something is unexplained; its orders and exits are the exchange's."""
    started = datetime.now(UTC)
    keys = live_keys(settings)
    if keys is not None:
        reconciliation = reconciled(settings, keys, account, run_key)
        if not reconciliation.trading_allowed:
            raise CycleError(
                f"{run_key}: reconciliation found what it cannot explain, nothing done: "
                + "; ".join(str(d) for d in reconciliation.unexplained)
            )
    analyses = price_snapshots(settings, at, settings.market.symbols)
    request = CoordinationInput(run_key, at, account, analyses, notices=notices, rebalance=trades)
    result = coordinate(request, settings, keys)
    report = build_report(run_key, at, started, analyses, result, decided_by=decided_by)
    if keys is not None:
        report = report.model_copy(update={"mode": "live"})
        emit_urgent_events(report.notes, run_key)
    record = CycleRecord(
        report,
        analyses,
        result,
        account,
        reported_runs=tuple(reported_runs),
        trading=False,
        dca_batch=dca_batch,
        flow_run_id=flow_run_id,
    )
    save_cycle(record, settings)
    return report, result
