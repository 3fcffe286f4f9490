"""Every flow run is recorded in the database when it starts and when it ends.

A run that raised is recorded as failed with its error; a run that never got to record its end (killed,
machine lost) stays `running` and is reported as crashed by the next trading cycle or market watch once
`watch.crashed_after_minutes` have passed. `triplegain status` shows each flow's last run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.context import FlowRunContext

from tasks.storage import begin_run, end_run
from triplegain.settings import Settings


@dataclass
class TrackedRun:
    """The run being recorded; set `status` to "skipped" when it decided not to do its work."""

    id: int
    status: str = "completed"


@contextmanager
def tracked_run(flow: str, run_key: str, settings: Settings) -> Iterator[TrackedRun]:
    """Record the run's start now and its end (completed, skipped, or failed with the error) on exit."""
    context = FlowRunContext.get()
    prefect_id = str(context.flow_run.id) if context and context.flow_run else None
    run = TrackedRun(begin_run(flow, run_key, settings, prefect_id))
    try:
        yield run
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        try:
            end_run(run.id, "failed", settings, f"{type(e).__name__}: {first}")
        except Exception as recording:  # the original error matters more than the bookkeeping
            get_run_logger().warning("could not record the failure of run %s: %s", run.id, recording)
        raise
    end_run(run.id, run.status, settings)
