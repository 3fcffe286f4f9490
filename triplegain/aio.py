"""Running the domain's coroutines from synchronous code (Prefect worker threads, notebooks, scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh event loop (about 0.1 ms) and return its result.

    Where a loop is already running in this thread (a notebook cell), it runs on a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="triplegain-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
