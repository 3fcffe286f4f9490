"""One run at a time on an account, held by the account's own database (every run that can act on the
account shares it, whatever else it shares).

PostgreSQL: a session-level advisory lock on a connection of its own, held for the turn. SQLite on a file:
an exclusive lock (flock, through `filelock`) on a file beside the database. An in-memory SQLite database
lives in one process, so a lock of that process's. Either way the operating system or the server frees a
turn whose holder dies: a killed process closes its connection or its file, and nobody waits for a lease
to lapse.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import filelock
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from triplegain.errors import DatabaseUnavailable, TripleGainError

log = logging.getLogger(__name__)

ACCOUNT_TURN_KEY = 0x7472_6970_6C67  # the advisory lock key of an account's turn ("tripl" + 1 on migration's)
_FIRST_POLL_SECONDS = 0.02
_LONGEST_POLL_SECONDS = 0.5
_HOLDER_PREFIX = "triplegain turn: "
# The server probes the turn's connection after 30 s of silence and drops it after 3 unanswered probes
# 10 s apart: a holder whose machine died (no FIN to close the socket) frees the turn within about a
# minute instead of the operating system's default two hours.
_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
_memory_locks: dict[str, threading.Lock] = {}
_memory_holders: dict[str, str] = {}
_memory_locks_guard = threading.Lock()


class TurnNotTaken(TripleGainError):
    """Another run held the account for the whole wait."""


class TurnLost(TripleGainError):
    """The turn ended before its holder released it (its database connection was lost)."""


def take_account_turn(
    engine: Engine,
    wait_seconds: float,
    on_wait: Callable[[str | None], None] | None = None,
    holder: str = "a run",
) -> AccountTurn:
    """The account's turn, taken by `holder` (what `turn_holder` says while it holds it, e.g. the run's
    id): hold it in a `with` block, which releases it. Waits up to `wait_seconds` for a run that holds it
    (calling `on_wait` once, with that run's `turn_holder`, when it first finds the turn taken), then
    raises TurnNotTaken, having done nothing. A turn that a PostgreSQL connection lost mid-way is reported
    (TurnLost) when the block ends."""
    if wait_seconds < 0:
        raise ValueError(f"wait_seconds must be at least 0, got {wait_seconds}")
    turn = _turn_for(engine)
    deadline = time.monotonic() + wait_seconds
    pause, waited = _FIRST_POLL_SECONDS, False
    said = f"{holder} (pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)"
    try:
        while not turn.take(said):
            if time.monotonic() >= deadline:
                raise TurnNotTaken(f"another run held the account for {wait_seconds:g} s")
            if not waited and on_wait is not None:
                on_wait(turn.holder())
            waited = True
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, _LONGEST_POLL_SECONDS)
    except BaseException:
        turn.give_up()
        raise
    return turn


def turn_holder(engine: Engine) -> str | None:
    """Who holds the account's turn now, as it said when it took it; None when the turn is free."""
    turn = _turn_for(engine)
    try:
        return turn.holder()
    finally:
        turn.give_up()


def _turn_for(engine: Engine) -> AccountTurn:
    if engine.dialect.name == "postgresql":
        return _AdvisoryTurn(engine)
    database = engine.url.database
    if (
        engine.dialect.name == "sqlite"
        and database
        and database != ":memory:"
        and "mode=memory" not in database
    ):
        return _FileTurn(Path(database).expanduser().resolve().with_name(Path(database).name + ".turn.lock"))
    if engine.dialect.name == "sqlite":
        return _MemoryTurn(engine.url.render_as_string(hide_password=False))
    raise TypeError(f"no account turn for a {engine.dialect.name} database")


class AccountTurn(AbstractContextManager["AccountTurn"]):
    """An account's turn: taken with `take(holder)` (True when it is ours now), released on leaving the
    block; `holder()` says who holds it (None when nobody does)."""

    def take(self, holder: str) -> bool:
        raise NotImplementedError

    def holder(self) -> str | None:
        raise NotImplementedError

    def __exit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        raise NotImplementedError

    def give_up(self) -> None:
        """Not taken after all: let go of what waiting held (a connection)."""


class _AdvisoryTurn(AccountTurn):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None

    def take(self, holder: str) -> bool:
        try:
            if self.connection is None:
                self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                for name, value in _KEEPALIVES.items():  # a holder whose machine died, not just its process
                    self.connection.execute(text(f"SET {name} = {value}"))
            taken = self.connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ACCOUNT_TURN_KEY}
            ).scalar()
            if taken:  # what pg_stat_activity shows of the connection holding the lock: `holder()`
                self.connection.execute(
                    text("SELECT set_config('application_name', :name, false)"),
                    {"name": _HOLDER_PREFIX + holder[: 63 - len(_HOLDER_PREFIX)]},
                )
        except SQLAlchemyError as e:
            self._close()
            raise DatabaseUnavailable(f"cannot take the account's turn: {e}") from e
        return bool(taken)

    def holder(self) -> str | None:
        with self.engine.connect() as connection:
            name = connection.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :high AND l.objid = :low "
                    "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"high": ACCOUNT_TURN_KEY >> 32, "low": ACCOUNT_TURN_KEY & 0xFFFF_FFFF},
            ).scalar()
        if name is None:
            return None
        return name.removeprefix(_HOLDER_PREFIX) or "a run (it did not say which)"

    def release(self) -> None:
        try:
            assert self.connection is not None
            held = self.connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": ACCOUNT_TURN_KEY}
            ).scalar()
        except SQLAlchemyError as e:
            held = False
            log.error("the account's turn: its connection was lost before the run ended: %s", e)
        finally:
            self._close()
        if not held:
            raise TurnLost(
                "the account's turn ended before this run did (its database connection was lost): another "
                "run may have acted on the account at the same time; reconcile before trading on"
            )

    def give_up(self) -> None:
        self._close()

    def _close(self) -> None:
        # Never back into the pool: a pooled connection still holding the lock would keep the turn.
        if self.connection is not None:
            self.connection.invalidate()
            self.connection.close()
            self.connection = None


class _FileTurn(AccountTurn):
    def __init__(self, path: Path) -> None:
        # kept on release (no unlink race between holders); never a soft lock a killed holder would leave
        self.lock = filelock.FileLock(path, fallback_to_soft=False, preserve_lock_file=True)
        self.said = path.with_name(path.name + ".holder")  # who holds it, written once it is held

    def take(self, holder: str) -> bool:
        if not self._acquire():
            return False
        self.said.write_text(holder)
        return True

    def _acquire(self) -> bool:
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    def holder(self) -> str | None:
        if self._acquire():  # free: nobody to name (a killed holder's note is stale)
            self.release()
            return None
        try:
            return self.said.read_text() or "a run (it did not say which yet)"
        except FileNotFoundError:
            return "a run (it did not say which yet)"

    def release(self) -> None:
        self.lock.release()


class _MemoryTurn(AccountTurn):
    def __init__(self, key: str) -> None:
        self.key = key
        with _memory_locks_guard:
            self.lock = _memory_locks.setdefault(key, threading.Lock())

    def take(self, holder: str) -> bool:
        if not self.lock.acquire(blocking=False):
            return False
        _memory_holders[self.key] = holder
        return True

    def holder(self) -> str | None:
        return _memory_holders.get(self.key) if self.lock.locked() else None

    def release(self) -> None:
        self.lock.release()
