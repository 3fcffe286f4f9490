"""Portfolio rebalancing: the hourly `portfolio-check` flow, and `dca-rebalance`, which executes one batch.

A check values the rebalanceable allocation (hodl bags and open positions excluded), decides whether and how
to rebalance (`triplegain.rebalance`), and stores the plan, superseding any older one. A small rebalance is
one batch executed at once; one of `portfolio.dca_threshold_usd` or more is split into batches hours apart,
and each batch becomes a scheduled run of the `dca-rebalance` deployment (visible in the Prefect UI, the
plan id and batch index as parameters). Without that deployment (a notebook, the CLI), the due batch runs at
once and later ones run with `triplegain dca run-due`.

Every batch executes at most once: its status moves from pending to executed in the same transaction as
its orders, so a retried, duplicated or late run finds it settled and does nothing. A batch that falls due
while the coordinator is PAUSED or HALTED is recorded as skipped and never executed later.

    from flows.rebalance import portfolio_check, run_due_batches
    check = portfolio_check(force=True)
    check.decision.trades, check.batches
    run_due_batches()
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled
from pydantic import BaseModel, ConfigDict, Field

from flows.live import live_account_turn
from flows.runs import default_cycle_time, price_snapshots, publish_artifacts, settle_account
from flows.settings import load_run_settings
from flows.tracking import commit_or_settle, name_run, tracked_run
from tasks.storage import (
    load_account,
    load_batch,
    load_due_batches,
    load_last_plan_at,
    load_state_at,
    prepare_database,
    save_batch_flow_run,
    save_plan,
    skip_batch,
)
from triplegain.aio import run_sync
from triplegain.errors import ConcurrentCycleError, CycleError
from triplegain.exposure import capped_portfolio, ceilings, closes_by_asset
from triplegain.models.market import MarketSnapshot
from triplegain.models.trading import Portfolio
from triplegain.rebalance import (
    BatchRecord,
    RebalanceDecision,
    allocation,
    batch_run_id,
    dca_batches,
    is_due,
    plan_rebalance,
    why_batch_skipped,
)
from triplegain.settings import Settings

CHECK_FLOW = "portfolio-check"
DCA_FLOW = "dca-rebalance"
DCA_DEPLOYMENT = f"{DCA_FLOW}/{DCA_FLOW}"
CHECK_ARTIFACT_KEY = "portfolio-check"
DCA_ARTIFACT_KEY = "dca-rebalance-report"
DCA_POSITIONS_KEY = "dca-rebalance-positions"


class PortfolioCheck(BaseModel):
    """What a portfolio check decided, the plan it stored, and what became of each batch so far."""

    model_config = ConfigDict(frozen=True)

    decision: RebalanceDecision
    plan_id: str | None = None
    batches: list[BatchRecord] = Field(default_factory=list)
    cancelled: list[BatchRecord] = Field(
        default_factory=list, description="Older plan's batches it cancelled"
    )
    scheduled_on_server: bool = Field(False, description="Batches are runs of the dca-rebalance deployment")


@flow(name=CHECK_FLOW, log_prints=False)
def portfolio_check(
    force: bool = False, symbols: list[str] | None = None, config_file: str | None = None
) -> PortfolioCheck:
    """Check the allocation against its targets and plan a rebalance when it drifted; returns the check."""
    logger = get_run_logger()
    settings = load_run_settings(config_file, symbols)
    now = datetime.now(UTC)
    prepare_database(settings)
    run_key = f"check-{now:%Y%m%dT%H%M%SZ}"
    name_run(run_key)
    with tracked_run(CHECK_FLOW, run_key, settings) as run:
        account = load_account(settings)
        market_at = default_cycle_time(settings)
        snapshots = _snapshots(
            settings, market_at, [f"{a}/USDT" for a in settings.portfolio.target_pct if a != "USDT"]
        )
        prices = {s.symbol: s.current_price for s in snapshots}
        equity = Portfolio(
            balances=account.balances, prices=prices, positions=account.positions, as_of=market_at
        ).equity
        limits = ceilings(closes_by_asset(snapshots), account.risk, equity, settings.portfolio, settings.risk)
        portfolio = capped_portfolio(settings.portfolio, limits)
        current = allocation(account.balances, prices, account.positions, portfolio)
        last = load_last_plan_at(settings)
        decision = plan_rebalance(account.coordinator, current, portfolio, settings.broker, now, last, force)
        if decision.action == "none":
            run.status = "skipped"
            logger.info("no rebalance: %s", decision.reason)
            check = PortfolioCheck(decision=decision)
        else:
            check = _plan(decision, settings, now, config_file)
    create_markdown_artifact(
        key=CHECK_ARTIFACT_KEY, markdown=render_check(check), description=decision.reason
    )
    return check


def _plan(
    decision: RebalanceDecision, settings: Settings, now: datetime, config_file: str | None
) -> PortfolioCheck:
    """Store the plan, cancel what it supersedes, schedule its batches (or run the due one here)."""
    logger = get_run_logger()
    plan_id = uuid.uuid4().hex[:12]
    batches = dca_batches(decision.trades, settings.portfolio, now)
    cancelled = save_plan(plan_id, decision, batches, settings)
    run_sync(_cancel_runs([b.prefect_flow_run_id for b in cancelled if b.prefect_flow_run_id]))
    on_server = run_sync(_deployment_exists())
    if on_server:
        for batch in batches:
            run = run_deployment(
                DCA_DEPLOYMENT,
                parameters={"plan_id": plan_id, "batch_index": batch.index},
                flow_run_name=batch_run_id(plan_id, batch.index),
                scheduled_time=batch.scheduled_at,
                timeout=0,
                as_subflow=False,
            )
            save_batch_flow_run(plan_id, batch.index, str(run.id), settings)  # type: ignore[union-attr]
        logger.info("plan %s: %d batch run(s) scheduled on %s", plan_id, len(batches), DCA_DEPLOYMENT)
    else:
        logger.info("plan %s: no %s deployment; running the due batch now", plan_id, DCA_DEPLOYMENT)
        dca_rebalance(plan_id, 0, config_file=config_file)
        if len(batches) > 1:
            logger.warning("later batches run with `triplegain dca run-due` (or serve the deployments)")
    stored = [load_batch(plan_id, b.index, settings) for b in batches]
    return PortfolioCheck(
        decision=decision,
        plan_id=plan_id,
        batches=[b for b in stored if b is not None],
        cancelled=cancelled,
        scheduled_on_server=on_server,
    )


@flow(name=DCA_FLOW, flow_run_name="dca-{plan_id}-b{batch_index}", log_prints=False)
def dca_rebalance(plan_id: str, batch_index: int, config_file: str | None = None) -> BatchRecord:
    """Execute one batch of a rebalance plan, exactly once; returns the batch as it stands afterwards."""
    logger = get_run_logger()
    settings = load_run_settings(config_file)
    prepare_database(settings)
    batch = _batch(plan_id, batch_index, settings)
    if batch.status != "pending":
        logger.info("batch %s#%d is already %s: nothing to do", plan_id, batch_index, batch.status)
        return batch
    if not is_due(batch.scheduled_at, datetime.now(UTC)):
        raise ValueError(
            f"DCA batch {plan_id}#{batch_index} is not due until {batch.scheduled_at.isoformat()}"
        )
    what = f"DCA batch {plan_id}#{batch_index}"
    with tracked_run(DCA_FLOW, batch.run_id, settings) as run:

        def attempt() -> BatchRecord:
            if not _execute(batch, settings, run.id):
                run.status = "skipped"
            return _batch(plan_id, batch_index, settings)

        def settled() -> BatchRecord | None:
            latest = _batch(plan_id, batch_index, settings)
            return latest if latest.status != "pending" else None

        with live_account_turn(settings, what):
            return commit_or_settle(attempt, settled, what)


def _execute(batch: BatchRecord, settings: Settings, flow_run_id: int) -> bool:
    """Make the batch's trades, or record it skipped when the coordinator was stopped; True when made."""
    account = load_account(settings)
    why = why_batch_skipped(
        batch.scheduled_at, load_state_at(batch.scheduled_at, settings), account.coordinator
    )
    if why is not None:
        with suppress(ConcurrentCycleError):  # another run of this batch settled it first
            skip_batch(batch.plan_id, batch.index, why, settings)
        get_run_logger().warning("DCA batch %s#%d skipped: %s", batch.plan_id, batch.index, why)
        return False
    report, _ = settle_account(
        settings,
        batch.run_id,
        default_cycle_time(settings),
        account,
        decided_by=DCA_FLOW,
        trades=batch.trades,
        dca_batch=(batch.plan_id, batch.index),
        flow_run_id=flow_run_id,
    )
    publish_artifacts(report, DCA_ARTIFACT_KEY, DCA_POSITIONS_KEY)
    return True


def _batch(plan_id: str, index: int, settings: Settings) -> BatchRecord:
    batch = load_batch(plan_id, index, settings)
    if batch is None:
        raise ValueError(f"no DCA batch {plan_id}#{index}: check the plan id (`triplegain dca status`)")
    return batch


@flow(name="dca-run-due", log_prints=False)
def run_due_batches(config_file: str | None = None) -> list[BatchRecord]:
    """Execute every due batch of the active plan, oldest first (what `triplegain dca run-due` does)."""
    settings = load_run_settings(config_file)
    prepare_database(settings)
    return [dca_rebalance(b.plan_id, b.index, config_file) for b in load_due_batches(settings)]


def _snapshots(settings: Settings, at: datetime, symbols: list[str]) -> list[MarketSnapshot]:
    """The target assets' snapshots (prices, and the closes their exposure ceilings are measured on)."""
    analyses = price_snapshots(settings, at, symbols)
    missing = [a for a in analyses if a.snapshot is None]
    if missing:
        raise CycleError(
            "cannot value the allocation: " + "; ".join(f"{a.symbol}: {a.error}" for a in missing)
        )
    return [a.snapshot for a in analyses if a.snapshot is not None]


async def _deployment_exists() -> bool:
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(DCA_DEPLOYMENT)
        except ObjectNotFound:
            return False
    return True


async def _cancel_runs(flow_run_ids: list[str]) -> None:
    """Cancel the scheduled runs of superseded batches (they would find their batch cancelled anyway)."""
    if not flow_run_ids:
        return
    async with get_client() as client:
        for run_id in flow_run_ids:
            try:
                await client.set_flow_run_state(
                    uuid.UUID(run_id), Cancelled(message="DCA plan superseded"), force=True
                )
            except ObjectNotFound:
                continue


def render_check(check: PortfolioCheck) -> str:
    """The check as markdown: allocation against targets, trades, skipped trades, batches."""
    d = check.decision
    lines = [
        f"# Portfolio check: {d.action}",
        f"{d.reason}. Rebalanceable equity {d.allocation.equity_usd:.2f} USD, max drift "
        f"{d.allocation.max_drift_pct:.2f} points.",
        "",
        "| asset | amount | excluded | value USD | share % | target % | drift |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in d.allocation.assets:
        lines.append(
            f"| {a.asset} | {a.amount:f} | {a.excluded:f} | {a.value_usd:.2f} | {a.pct:.2f} | {a.target_pct} "
            f"| {a.drift_pct:+.2f} |"
        )
    if d.trades:
        lines += ["", "## Trades (sells first)", ""]
        lines += [
            f"- {t.side} {t.amount_usd} USD of {t.symbol} (expected cost {t.cost_usd} USD)" for t in d.trades
        ]
    if d.skipped:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in d.skipped]
    if check.batches:
        lines += ["", f"## Plan {check.plan_id}", ""]
        lines += [
            f"- batch {b.index} at {b.scheduled_at:%Y-%m-%d %H:%M} UTC: {b.status}, "
            + ", ".join(f"{t.side} {t.amount_usd} {t.symbol}" for t in b.trades)
            for b in check.batches
        ]
    return "\n".join(lines) + "\n"
