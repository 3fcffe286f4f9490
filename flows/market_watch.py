"""The market-watch flow (every 5 minutes): protect what is open, whatever the coordinator's state.

Marks every open position to market, takes stop-loss, take-profit and (when enabled) trailing-stop exits
through the paper broker, moves trailing stops, checks the circuit breakers and acts on them (pause,
reduce positions by half, halt and close all), and snapshots positions and the portfolio. It runs while
PAUSED and HALTED too: that is the point of it. It places no new position and calls no model.

    from flows.market_watch import market_watch
    report = market_watch(at="2024-06-01T12:05Z")
    report.portfolio.positions

Each watch is identified by its 5-minute slot (`watch-YYYYMMDDTHHMMZ`): a retried or duplicated run of
the same slot returns the stored report and sends no order twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from flows.live import live_account_turn
from flows.runs import default_cycle_time, publish_artifacts, settle_account, stored_report
from flows.settings import load_run_settings
from flows.tracking import commit_or_settle, name_run, run_name, skip, tracked_run
from tasks.events import emit_coordinator_events, emit_degradation_events
from tasks.storage import load_account, load_unreported_failures, prepare_database
from triplegain.cycle import behind_the_account, parse_time, skipped_report
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CycleStatus

FLOW_NAME = "market-watch"
ARTIFACT_KEY = "market-watch-report"
POSITIONS_ARTIFACT_KEY = "market-watch-positions"
SLOT_MINUTES = 5


def watch_id_for(at: datetime) -> str:
    """A watch's identity: its 5-minute slot."""
    return f"watch-{at:%Y%m%dT%H%MZ}"


def watch_time(at: datetime) -> datetime:
    """`at` in UTC, floored to its 5-minute slot."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % SLOT_MINUTES, second=0, microsecond=0)


def _watch_name(parameters: dict[str, Any]) -> str:
    at = parameters.get("at")
    if at is None:
        at = default_cycle_time(load_run_settings(parameters.get("config_file"), parameters.get("symbols")))
    return watch_id_for(watch_time(parse_time(at)))


@flow(name=FLOW_NAME, log_prints=False, flow_run_name=run_name(_watch_name))
def market_watch(
    at: datetime | str | None = None, symbols: list[str] | None = None, config_file: str | None = None
) -> CycleReport:
    """Mark to market, take exits, act on circuit breakers, snapshot positions; returns the watch's report."""
    logger = get_run_logger()
    settings = load_run_settings(config_file, symbols)
    when = watch_time(parse_time(at) if at is not None else default_cycle_time(settings))
    watch_id = watch_id_for(when)
    name_run(watch_id)
    prepare_database(settings)
    stored = stored_report(watch_id, settings)
    if stored is not None:
        logger.info("%s already ran; returning its stored report, sending no order", watch_id)
        return stored

    with tracked_run(FLOW_NAME, watch_id, settings) as run:

        def attempt() -> CycleReport:
            account = load_account(settings)
            behind = behind_the_account(when, account)
            if behind is not None:
                return skip(run, skipped_report(watch_id, when, account, behind), behind)
            failures = load_unreported_failures(settings)
            report, result = settle_account(
                settings,
                watch_id,
                when,
                account,
                decided_by=FLOW_NAME,
                notices=[record.describe() for _, record in failures],
                reported_runs=[i for i, _ in failures],
                flow_run_id=run.id,
            )
            emit_coordinator_events(settings)
            emit_degradation_events(result.degradation_changes)
            if report.status is not CycleStatus.COMPLETED:
                logger.warning(
                    "%s: %s", watch_id, "; ".join(o.error or "" for o in report.symbols if o.error)
                )
            publish_artifacts(report, ARTIFACT_KEY, POSITIONS_ARTIFACT_KEY)
            return report

        with live_account_turn(settings, watch_id):
            return commit_or_settle(attempt, lambda: stored_report(watch_id, settings), watch_id)
