"""Every flow run is recorded in the database when it starts and when it ends.

A run that raised is recorded as failed with its error; a run that never got to record its end (killed,
machine lost) stays `running` and is reported as crashed by the next trading cycle or market watch once
`watch.crashed_after_minutes` have passed. `triplegain status` shows each flow's last run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Completed

from tasks.storage import finish_run, start_run
from triplegain.errors import ConcurrentCycleError
from triplegain.models.cycle import CycleReport
from triplegain.settings import Settings

R = TypeVar("R")
COMMIT_ATTEMPTS = 2  # a run that lost the account to another (e.g. the market watch) runs once more


@dataclass
class TrackedRun:
    """The run being recorded; set `status` to "skipped" when it decided not to do its work."""

    id: int
    status: str = "completed"


def name_run(name: str) -> None:
    """Name the current flow run after what it runs (`cycle-20240630T2300Z`, `watch-...`), in place of
    Prefect's random one, so the runs list says what ran. A failure to rename is logged, never fatal."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.name == name:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run_id=context.flow_run.id, name=name)
    except Exception as e:  # the run itself must not fail over its name
        get_run_logger().warning("could not name this run %s: %s", name, e)


def run_name(compute: Callable[[dict[str, Any]], str]) -> Callable[[], str]:
    """A `flow_run_name` for `@flow`: Prefect calls it before the run's first log line, so even
    "Beginning flow run ..." and the first task runs carry the name `compute(parameters)` gives (the same
    one the flow body passes to `name_run`). Should `compute` fail (a broken config file, a database that
    is down), the run keeps Prefect's name and the flow body reports the error itself."""

    def name() -> str:
        context = FlowRunContext.get()
        current = context.flow_run.name if context is not None and context.flow_run is not None else ""
        try:
            return compute(dict(context.parameters) if context is not None else {})
        except Exception:  # the flow body meets the same error and reports it properly
            return current

    return name


@contextmanager
def tracked_run(flow: str, run_key: str, settings: Settings) -> Iterator[TrackedRun]:
    """Record the run's start now and its end (completed, skipped, or failed with the error) on exit."""
    context = FlowRunContext.get()
    prefect_id = str(context.flow_run.id) if context and context.flow_run else None
    run = TrackedRun(start_run(flow, run_key, settings, prefect_id))
    try:
        yield run
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        try:
            finish_run(run.id, "failed", settings, f"{type(e).__name__}: {first}")
        except Exception as recording:  # the original error matters more than the bookkeeping
            get_run_logger().warning("could not record the failure of run %s: %s", run.id, recording)
        raise
    finish_run(run.id, run.status, settings)


def skip(run: TrackedRun, report: CycleReport, why: str) -> Any:
    """End the run without doing its work: warn why, record it as skipped, and return the Completed state
    named Skipped that carries `report` (what a flow returns in place of its report)."""
    get_run_logger().warning("%s: %s", report.cycle_id, why)
    run.status = "skipped"
    return Completed(name="Skipped", message=why, data=report)


def commit_or_settle(step: Callable[[], R], settled: Callable[[], R | None], what: str) -> R:
    """Run `step`, which loads the account and commits its work on it. When the commit is refused because
    another run moved the account first (ConcurrentCycleError), return what that run settled if it did this
    very work (`settled`), otherwise run `step` once more on the account as it now stands."""
    logger = get_run_logger()
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return step()
        except ConcurrentCycleError as e:
            done = settled()
            if done is not None:
                logger.warning("%s was settled by a run started at the same time: %s", what, e)
                return done
            if attempt == COMMIT_ATTEMPTS:
                raise
            logger.warning("%s: %s; running again on the account as the other run left it", what, e)
    raise AssertionError("unreachable: the last attempt returns or raises")
