"""An account's turn, held by its database on SQLite and PostgreSQL: one holder at a time, across threads
and processes; a waiter takes it when it is released; a killed holder frees it at once; a PostgreSQL turn
lost with its connection is said when its holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import POSTGRES_ENV
from triplegain.storage import create_db_engine
from triplegain.storage.turns import TurnLost, TurnNotTaken, take_account_turn, turn_holder

ROOT = Path(__file__).resolve().parents[3]
_HOLD = """
import sys
from triplegain.storage import create_db_engine
from triplegain.storage.turns import take_account_turn
with take_account_turn(create_db_engine(sys.argv[1]), 0):
    print("held", flush=True)
    sys.stdin.readline()  # until killed
"""


def test_one_run_holds_the_turn_at_a_time(engine: Engine) -> None:
    with take_account_turn(engine, 0), pytest.raises(TurnNotTaken, match="held the account for 0 s"):
        take_account_turn(engine, 0)
    with take_account_turn(engine, 0):  # released: free again
        pass


def test_who_holds_the_turn_is_said(engine: Engine) -> None:
    assert turn_holder(engine) is None
    with take_account_turn(engine, 0, holder="watch-20240630T2005Z"):
        said = turn_holder(engine)
        assert said is not None and said.startswith(f"watch-20240630T2005Z (pid {os.getpid()}, since ")
    assert turn_holder(engine) is None


def test_a_waiting_run_takes_the_turn_once_it_is_released(engine: Engine) -> None:
    events: list[str] = []
    waiting = threading.Event()

    def second() -> None:
        def wait(holder: str | None) -> None:
            events.append(f"second waits for {(holder or '').split(' ')[0]}")
            waiting.set()

        with take_account_turn(engine, 60, on_wait=wait):
            events.append("second holds")

    with take_account_turn(engine, 0, holder="first"):
        events.append("first holds")
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=60)
        events.append("first releases")
    thread.join(timeout=60)

    assert events == ["first holds", "second waits for first", "first releases", "second holds"]


def test_runs_contending_for_the_turn_hold_it_one_at_a_time(engine: Engine) -> None:
    inside, most, turns = 0, 0, 0
    guard = threading.Lock()

    def run() -> None:
        nonlocal inside, most, turns
        for _ in range(5):
            with take_account_turn(engine, 60):
                with guard:
                    inside += 1
                    most, turns = max(most, inside), turns + 1
                time.sleep(0.002)  # a while inside, for another to try its luck
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert (most, turns) == (1, 20)


def test_a_process_killed_holding_the_turn_frees_it_at_once(engine: Engine) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, engine.url.render_as_string(hide_password=False)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TurnNotTaken):  # another process's turn
            take_account_turn(engine, 0)
        assert (turn_holder(engine) or "").startswith(f"a run (pid {holder.pid}, since ")
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
        deadline = time.monotonic() + 30  # PostgreSQL ends the dead client's session as it notices
        while turn_holder(engine) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert turn_holder(engine) is None  # not the dead holder's stale word

        with take_account_turn(engine, 30):  # freed by the kill, not by a lease running out
            pass


def test_a_postgresql_turn_lost_with_its_connection_is_said_when_it_ends(
    postgres_server_url: str | None,
) -> None:
    """(SQLite's turn is a file lock: only its own process can lose it, and then by dying.)"""
    if postgres_server_url is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV}")
    engine = create_db_engine(postgres_server_url)
    turn = take_account_turn(engine, 0)
    try:
        holder_pid = turn.connection.execute(text("SELECT pg_backend_pid()")).scalar()  # type: ignore[attr-defined]
        with engine.connect() as other:  # the server drops the holder's connection (a restart, a kill)
            # only the holder's backend (never another test's), and wait up to 10 s until it has gone:
            # pg_terminate_backend without a timeout only signals it
            assert other.execute(
                text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": holder_pid}
            ).scalar()
            other.commit()
        with take_account_turn(engine, 10):  # meanwhile another run could take it
            pass

        with pytest.raises(TurnLost, match="reconcile before trading on"), turn:
            pass
    finally:
        turn.give_up()  # its connection closed whatever happened above (never left to the garbage collector)
        engine.dispose()


def test_a_postgresql_turn_is_dropped_soon_when_its_holders_machine_goes_silent(
    postgres_server_url: str | None,
) -> None:
    """No FIN from a machine that lost power: the server's keepalive probes on the turn's connection end
    it (the lock with it) within about a minute, not the operating system's two hours."""
    if postgres_server_url is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV}")
    engine = create_db_engine(postgres_server_url)
    with take_account_turn(engine, 0) as turn:
        connection = turn.connection  # type: ignore[attr-defined]
        shown = dict(
            connection.execute(
                text(
                    "SELECT name, setting FROM pg_settings "
                    "WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_count')"
                )
            ).all()
        )
    engine.dispose()

    assert shown == {"tcp_keepalives_idle": "30", "tcp_keepalives_count": "3"}  # seconds, probes


def test_in_memory_sqlite_takes_turns_within_its_process() -> None:
    engine = create_db_engine("sqlite://")
    with take_account_turn(engine, 0), pytest.raises(TurnNotTaken):
        take_account_turn(engine, 0)


def test_a_negative_wait_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        take_account_turn(engine, -1)
