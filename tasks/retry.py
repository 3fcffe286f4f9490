"""Retry conditions: a task is retried only for errors that may pass, and never for the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

RetryCondition = Callable[[Task[..., Any], TaskRun, State[Any]], Awaitable[bool]]


def retry_on(*transient: type[BaseException]) -> RetryCondition:
    """Retry when the task raised one of `transient` (unless the error says `retryable = False`).

    The condition is async: async tasks must await the state's result, and Prefect runs an async
    condition for sync tasks too.
    """

    async def condition(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
        try:
            await state.aresult()
        except transient as e:
            return bool(getattr(e, "retryable", True))
        except Exception:
            return False
        return False

    return condition
