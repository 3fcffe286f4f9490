"""A terminal's Ctrl-C reaches every process of the command: the temporary Prefect server and the local Dask
workers are started deaf to it, so that only the command reacts and stops them in order (`flows.ctrl_c`).
The whole command interrupted for real: `test_optimize.py::test_a_study_stopped_mid_way...[ctrl-c]`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from distributed import Client, LocalCluster

from flows.ctrl_c import children_deaf_to_ctrl_c
from flows.optimize import dask_runner

SIGINT_BIT = 1 << (signal.SIGINT - 1)
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def sigint(pid: int, line: str) -> bool:
    """Whether SIGINT is in the process's `line` set of /proc/<pid>/status (SigBlk, SigIgn)."""
    with open(f"/proc/{pid}/status") as status:
        found = next(x for x in status if x.startswith(f"{line}:"))
    return bool(int(found.split()[1], 16) & SIGINT_BIT)


def test_a_process_started_deaf_outlives_ctrl_c_and_one_started_after_does_not() -> None:
    with children_deaf_to_ctrl_c():
        deaf = subprocess.Popen(SLEEPER)
    hearing = subprocess.Popen(SLEEPER)
    try:
        assert sigint(deaf.pid, "SigBlk") and not sigint(hearing.pid, "SigBlk")
        assert not sigint(os.getpid(), "SigBlk")  # this process hears it again
        os.kill(deaf.pid, signal.SIGINT)
        os.kill(hearing.pid, signal.SIGINT)
        assert hearing.wait(timeout=60) != 0
        with pytest.raises(subprocess.TimeoutExpired):
            deaf.wait(timeout=2)
    finally:
        for process in (deaf, hearing):
            process.kill()
            process.wait()


def test_a_ctrl_c_while_children_start_is_raised_after_not_lost() -> None:
    reached: list[bool] = []

    def start_children() -> None:
        with children_deaf_to_ctrl_c():
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            time.sleep(0.1)  # a few hundred bytecodes: a SIGINT that were not held would be raised by now
            reached.append(True)

    with pytest.raises(KeyboardInterrupt):
        start_children()
    assert reached


def test_optimize_local_dask_workers_ignore_ctrl_c() -> None:
    """The cluster `optimize` starts by default: a SIGINT to its worker leaves it running, the same process
    (a worker killed by it would be replaced by its nanny, under a new pid)."""
    runner = dask_runner(workers=1)
    with LocalCluster(**runner.cluster_kwargs) as cluster, Client(cluster) as client:
        (pid,) = client.run(os.getpid).values()
        assert sigint(pid, "SigIgn")
        os.kill(pid, signal.SIGINT)
        time.sleep(1)
        assert list(client.run(os.getpid).values()) == [pid]


def test_a_sigterm_ends_the_command_through_its_exit_handlers() -> None:
    """The default SIGTERM action skips exit handlers, so Prefect's stop of its temporary server never ran."""
    script = (
        "import atexit, os, signal, time\nfrom flows.ctrl_c import exit_on_sigterm\n"
        "atexit.register(lambda: print('exit handlers ran', flush=True))\n{install}"
        "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(60)\n"
    )

    def run(install: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", script.format(install=install)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    handled, default = run("exit_on_sigterm()\n"), run("")

    assert handled.returncode == 143 and "exit handlers ran" in handled.stdout, handled.stderr
    assert default.returncode == -signal.SIGTERM and "exit handlers ran" not in default.stdout
