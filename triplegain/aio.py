"""Running the domain's coroutines from synchronous code (Prefect worker threads, notebooks, scripts)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh event loop and return its result.

    Unlike asyncio.run, it installs no SIGINT handler (on the main thread asyncio.run does so on every
    call, and that alone cost a millisecond a cycle). Where a loop is already running in this thread (a
    notebook cell), the coroutine runs on a helper thread, in a copy of this thread's context (a Prefect
    run context, for one, still applies there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_new_loop(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="triplegain-sync") as pool:
        return pool.submit(contextvars.copy_context().run, _run_on_new_loop, coro).result()


def _run_on_new_loop(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
