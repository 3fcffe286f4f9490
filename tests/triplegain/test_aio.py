import asyncio

import pytest

from triplegain.aio import run_sync, shared_loop


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


def test_a_shared_loop_serves_every_call_and_leaves_nothing_running() -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    leftovers: list[asyncio.Task[None]] = []

    async def note_loop() -> int:
        loops.append(asyncio.get_running_loop())
        leftovers.append(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))
        return len(loops)

    with shared_loop():
        assert [run_sync(note_loop()) for _ in range(3)] == [1, 2, 3]
        assert all(task.cancelled() for task in leftovers)  # each call ends with nothing left on the loop

    assert loops[0] is loops[1] is loops[2]
    assert loops[0].is_closed()
    assert run_sync(note_loop()) == 4
    assert loops[3] is not loops[0]  # outside the block, a fresh loop per call again


def test_a_shared_loop_still_raises_and_stays_usable() -> None:
    async def boom() -> None:
        raise KeyError("x")

    with shared_loop():
        with pytest.raises(KeyError):
            run_sync(boom())
        assert run_sync(answer()) == 42


def test_a_shared_loop_inside_a_running_loop_changes_nothing_as_in_a_notebook() -> None:
    async def cell() -> int:
        with shared_loop():
            return run_sync(answer()) + run_sync(answer())

    assert asyncio.run(cell()) == 84
