import asyncio

import pytest

from triplegain.aio import run_sync


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_runs_a_coroutine_from_plain_code() -> None:
    assert run_sync(answer()) == 42


def test_runs_inside_a_running_loop_as_a_notebook_would() -> None:
    async def cell() -> int:
        return run_sync(answer())

    assert asyncio.run(cell()) == 42


def test_errors_come_through() -> None:
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_sync(boom())


def test_leftover_tasks_are_cancelled_not_leaked() -> None:
    started: list[asyncio.Task[None]] = []

    async def spawn() -> None:
        started.append(asyncio.get_running_loop().create_task(asyncio.sleep(60)))

    run_sync(spawn())

    assert started[0].cancelled()
