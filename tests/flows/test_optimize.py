"""`optimize` as a flow: trials as tasks on a real Dask LocalCluster (two worker processes, then one, with
the same result), outputs and artifacts, a failing trial, a resumed study, and the CLI's early checks."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import optuna
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
from prefect.task_runners import ThreadPoolTaskRunner
from typer.testing import CliRunner

import flows.optimize as optimize_module
from flows.cli import app
from flows.optimize import PROGRESS_KEY, RESULT_KEY, OrchestrationLost, on_dask, optimize, trial_listener
from tests.flows.fresh_process import PROBE
from triplegain.errors import ConfigError, ConfigProblem
from triplegain.optimize import OptimizationResult
from triplegain.settings import load_settings
from triplegain.storage.studies import study_storage

SPACE = {
    "objective": "sharpe",
    "max_drawdown_pct": 30,
    "trials": 4,
    "batch": 2,
    "seed": 11,
    "train_days": 4,
    "test_days": 2,
    "start": "2024-06-10T00:00Z",
    "end": "2024-06-19T23:00Z",
    "params": {
        "portfolio.drift_threshold_pct": {"low": 5, "high": 20, "step": 2.5},
        "decision.offline.evidence_edge": {"low": 0.3, "high": 1.0, "log": True},
    },
}


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "drift.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def windows(result: OptimizationResult) -> list[tuple[Any, ...]]:
    return [(w.best_params, w.objective_in, w.objective_out, w.objective_default_out) for w in result.windows]


def test_trials_run_on_two_dask_workers_as_on_one_with_outputs_and_artifacts(
    project_db: str, space_file: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    with trial_listener(lambda progress: seen.append((progress.finished, progress.total))):
        state = on_dask(workers=2)(
            str(space_file), study="two", output_dir=str(tmp_path / "two"), return_state=True
        )
    two: OptimizationResult = state.result()  # type: ignore[assignment]
    one = on_dask(workers=1)(str(space_file), study="one", output_dir=str(tmp_path / "one"))

    assert len(two.windows) == 3 and [w.trials for w in two.windows] == [4, 4, 4]
    assert windows(two) == windows(one)  # the same seed and space: the same study, whichever workers
    assert seen == [(n, 12) for n in range(1, 13)]  # one at a time, though two windows ran side by side
    assert two.chosen == two.windows[-1].best_params and two.chosen
    outputs = {k: Path(v) for k, v in two.outputs.items()}
    assert all(p.exists() for p in outputs.values()) and outputs["png"].read_bytes()[:4] == b"\x89PNG"
    chosen = load_settings(outputs["settings"])
    assert chosen.portfolio.drift_threshold_pct == pytest.approx(two.chosen["portfolio.drift_threshold_pct"])
    assert OptimizationResult.model_validate_json(outputs["json"].read_text()) == two

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[PROGRESS_KEY]))
        )
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[RESULT_KEY]))
        )
    assert run.name == "optimize-two"
    # Every trial and test backtest ran as a task of this flow run, recorded by the workers in this API.
    # Each named as the logs and the progress name it: its window and Optuna's trial number.
    names = {t.name for t in tasks}
    trials = {f"w{w}-trial-{n}" for w in range(3) for n in range(4)}
    tested = {n for n in names if re.fullmatch(r"w[0-2]-test-(configured|trial-[0-3])", n)}
    assert trials <= names and len(tested) == 3 * 2
    trial_runs = [t for t in tasks if t.name in trials | tested]
    assert len(trial_runs) == 3 * (4 + 2) and all(t.state_type.value == "COMPLETED" for t in trial_runs)
    assert any(a.data == 100.0 for a in progress)
    assert any("optimize two" in (a.description or "") for a in table)


def test_a_trial_that_raises_is_failed_and_a_rerun_resumes_without_running_finished_trials(
    project_db: str, space_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = optimize_module.prepare_backtest
    calls: list[dict[str, Any]] = []

    def flaky(*args: Any, overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        calls.append(overrides or {})
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, overrides=overrides, **kwargs)

    monkeypatch.setattr(optimize_module, "prepare_backtest", flaky)
    in_process = optimize.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
    first = in_process(str(space_file), study="flaky", output_dir=str(tmp_path / "out"), windows_at_once=1)
    ran = len(calls)

    again = in_process(str(space_file), study="flaky", output_dir=str(tmp_path / "out"), windows_at_once=3)

    assert first.windows[0].failed == 1 and first.windows[0].trials == 4
    assert ran == 3 * (4 + 2)  # the failed trial counts towards the budget
    assert len(calls) - ran == 3 * 2  # the rerun ran only the test backtests: every trial was kept
    assert windows(again) == windows(first)


def test_a_trial_that_cannot_reach_prefect_stops_the_study_instead_of_counting_as_failed(
    project_db: str, space_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Prefect server restarting mid-study: the trials of the outage fail only because it is gone (here
    the settings block read, as in a real trial). Recorded as failed, they would spend the budget on no
    backtest at all; the study stops instead, and the same command finishes it."""
    real = optimize_module.prepare_backtest
    calls: list[int] = []

    def server_gone(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            try:
                raise httpx.ConnectError("[Errno 111] Connection refused")
            except httpx.ConnectError as e:
                gone = ConfigProblem("block triplegain-database", "<unread>", "a reachable Prefect API")
                raise ConfigError([gone]) from e
        return real(*args, **kwargs)

    monkeypatch.setattr(optimize_module, "prepare_backtest", server_gone)
    lost = r"w0-trial-\d could not reach Prefect or Dask \(ConnectError"
    with pytest.raises(OrchestrationLost, match=lost):
        in_threads(2)(str(space_file), study="outage", output_dir=str(tmp_path / "a"), windows_at_once=1)
    with study_storage(load_settings()) as storage:
        (study,) = [optuna.load_study(study_name=s.study_name, storage=storage) for s in all_studies(storage)]
        kept = [t.state for t in study.trials]
    monkeypatch.setattr(optimize_module, "prepare_backtest", real)
    resumed = in_threads(2)(
        str(space_file), study="outage", output_dir=str(tmp_path / "b"), windows_at_once=1
    )

    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING
    assert kept == [complete, complete, running, running]  # the batch of the outage is not told back
    assert [w.trials for w in resumed.windows] == [4, 4, 4] and [w.failed for w in resumed.windows] == [0] * 3


def test_a_trial_on_a_worker_says_it_could_not_reach_prefect_in_a_type_that_travels_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a Dask worker a trial's exception comes back pickled, without its cause: the ConfigError of an
    unreadable settings block would look like the trial's own failure. The trial says it in its type."""

    def server_gone(*args: Any, **kwargs: Any) -> Any:
        try:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        except httpx.ConnectError as e:
            raise ConfigError([ConfigProblem("block triplegain-database", "<unread>", "reachable")]) from e

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    def trial() -> BaseException:
        with pytest.raises((OrchestrationLost, OSError)) as raised:
            optimize_module.trial_backtest.fn(
                {}, at("2024-06-10T00:00Z"), at("2024-06-11T00:00Z"), None, None, None
            )
        return pickle.loads(pickle.dumps(raised.value))  # as it comes back from a worker

    monkeypatch.setattr(optimize_module, "prepare_backtest", server_gone)
    lost = trial()
    monkeypatch.setattr(optimize_module, "prepare_backtest", disk_full)
    failed = trial()

    assert isinstance(lost, OrchestrationLost) and str(lost) == "ConnectError: [Errno 111] Connection refused"
    assert optimize_module._unreachable(lost) == str(lost)
    assert optimize_module._unreachable(failed) is None and isinstance(failed, OSError)


def test_the_cli_refuses_a_bad_space_before_starting_anything(tmp_path: Path, project_db: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPACE, "params": {"portfolio.drift": {"low": 1, "high": 2}}}))

    result = CliRunner().invoke(app, ["optimize", str(bad)])

    assert result.exit_code == 1
    assert "portfolio.drift: unknown setting 'drift' in portfolio" in result.stderr
    assert "temporary Prefect server" not in result.stderr and "study" not in result.stdout


def test_the_cli_refuses_history_too_short_for_one_window(tmp_path: Path, project_db: str) -> None:
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump({**SPACE, "train_days": 300}))

    result = CliRunner().invoke(app, ["optimize", str(short), "--workers", "1"])

    assert result.exit_code == 1 and "holds no 300-day training window" in result.stderr


def test_ctrl_c_says_how_to_resume(
    space_file: Path, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            raise KeyboardInterrupt

        return run

    monkeypatch.setattr(optimize_module, "on_dask", interrupted)

    result = CliRunner().invoke(app, ["optimize", str(space_file), "--workers", "1"])

    assert result.exit_code == 130
    assert "finished trials of study drift are kept; run the same command" in " ".join(result.stderr.split())


def test_the_cli_says_what_stopped_the_study_not_that_reporting_it_failed_too(
    space_file: Path, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server gone: the flow's report of the OrchestrationLost fails too, and that is what is raised."""

    def server_gone(*args: Any, **kwargs: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            try:
                raise OrchestrationLost("w0-trial-3 could not reach Prefect or Dask (ConnectError: refused)")
            except OrchestrationLost:
                raise httpx.ConnectError("[Errno 111] Connection refused") from None

        return run

    monkeypatch.setattr(optimize_module, "on_dask", server_gone)

    result = CliRunner().invoke(app, ["optimize", str(space_file), "--workers", "1"])

    assert result.exit_code == 1
    assert "error: OrchestrationLost: w0-trial-3 could not reach Prefect" in " ".join(result.stderr.split())


def test_zero_workers_from_python_is_refused_not_taken_for_every_core() -> None:
    from flows.optimize import dask_runner

    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        dask_runner(workers=0)


def test_a_trial_reuses_its_workers_analyses_and_scores_as_a_plain_backtest() -> None:
    from flows.backtest_setup import prepare_backtest
    from flows.optimize import trial_backtest
    from triplegain.analysis_memo import AnalysisMemo

    start, end = "2024-06-10T00:00Z", "2024-06-12T23:00Z"
    first = trial_backtest.fn({"portfolio.drift_threshold_pct": 5.0}, start, end, None, None, None)
    other = {"portfolio.drift_threshold_pct": 15.0}

    again = trial_backtest.fn(other, start, end, None, None, None)

    setup = prepare_backtest(start, end, overrides={"portfolio": {"drift_threshold_pct": 15.0}})
    memo = AnalysisMemo(setup.source, setup.settings)
    assert memo.hits >= 2 * 72  # the second trial found every hour's analysis of the first
    assert again == setup.run().metrics and first != again


ROOT = Path(__file__).resolve().parents[2]
at = datetime.fromisoformat
all_studies = optuna.get_all_study_summaries


def in_threads(max_workers: int = 8) -> Any:
    return optimize.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max_workers))


def test_windows_are_searched_side_by_side_with_the_study_of_one_at_a_time(
    project_db: str, space_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = optimize_module.prepare_backtest
    # The first trial of every window waits until another window's first trial has started: searched one
    # window at a time, the barrier would break (and its trial fail) instead.
    meet = threading.Barrier(3, timeout=60)
    met: set[datetime] = set()
    lock = threading.Lock()

    def meeting(start: datetime, end: datetime, *args: Any, **kwargs: Any) -> Any:
        with lock:
            first = start not in met and len(met) < meet.parties  # the windows' first trials only
            met.add(start)
        if first:
            meet.wait()
        return real(start, end, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "prepare_backtest", meeting)
    side = in_threads()(str(space_file), study="side", output_dir=str(tmp_path / "a"), windows_at_once=3)
    monkeypatch.setattr(optimize_module, "prepare_backtest", real)
    alone = in_threads()(str(space_file), study="alone", output_dir=str(tmp_path / "b"), windows_at_once=1)

    assert not meet.broken and meet.n_waiting == 0
    assert [w.failed for w in side.windows] == [0, 0, 0]
    assert windows(side) == windows(alone)
    assert [w.index for w in side.windows] == [0, 1, 2]


def test_a_window_that_fails_stops_the_others_and_every_finished_trial_is_kept(
    project_db: str, space_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = optimize_module.prepare_backtest
    window_0_tested = (at("2024-06-14T00:00Z"), at("2024-06-15T23:00Z"))
    window_1_trained = at("2024-06-12T00:00Z")
    stopping: list[threading.Event] = []

    class Recorded(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            stopping.append(self)

    def test_fails(start: datetime, end: datetime, *args: Any, **kwargs: Any) -> Any:
        if (start, end) == window_0_tested:
            raise RuntimeError("disk full")
        if start == window_1_trained:  # window 1's first batch is still running when window 0 fails,
            assert stopping[0].wait(60)  # and fails under it as a cluster going away would fail it
            raise RuntimeError("worker lost")
        return real(start, end, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "Event", Recorded)
    monkeypatch.setattr(optimize_module, "prepare_backtest", test_fails)
    with pytest.raises(RuntimeError, match="window 0: a test backtest failed: disk full"):
        in_threads()(str(space_file), study="stops", output_dir=str(tmp_path / "out"), windows_at_once=2)
    with study_storage(load_settings()) as storage:
        studies = [optuna.load_study(study_name=s.study_name, storage=storage) for s in all_studies(storage)]
        kept = {study.study_name: [t.state for t in study.trials] for study in studies}
    monkeypatch.setattr(optimize_module, "prepare_backtest", real)
    resumed = in_threads()(str(space_file), study="stops", output_dir=str(tmp_path / "b"), windows_at_once=2)

    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING
    assert kept["stops/w0-20240610"] == [complete] * 4  # window 0 failed after its trials: all kept
    assert kept["stops/w1-20240612"] == [running] * 2  # stopped, not told back as two failed trials
    assert "stops/w2-20240614" not in kept  # never started once window 0 had failed
    assert [w.trials for w in resumed.windows] == [4, 4, 4] and [w.failed for w in resumed.windows] == [0] * 3


def test_side_by_side_keeps_the_order_and_stops_at_the_first_failure() -> None:
    from flows.optimize import side_by_side

    stopping = threading.Event()
    started: list[int] = []
    lock = threading.Lock()
    two_running = threading.Barrier(2, timeout=30)

    def work(item: int) -> int:
        with lock:
            started.append(item)
        if item < 2:
            two_running.wait()  # both first items run at once
        if item == 1:
            raise ValueError("item 1 failed")
        if item == 0:
            assert stopping.wait(30)  # told to stop by item 1's failure
            raise optimize_module._Stopped
        return item

    assert side_by_side(lambda i: i * 10, [3, 1, 2], 2, threading.Event()) == [30, 10, 20]
    with pytest.raises(ValueError, match="item 1 failed"):
        side_by_side(work, [0, 1, 2, 3], 2, stopping)
    assert stopping.is_set() and sorted(started) == [0, 1]  # 2 and 3 never started


def test_side_by_side_does_not_wait_for_running_items_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.optimize import side_by_side

    stopping, running, release = threading.Event(), threading.Event(), threading.Event()

    def work(item: int) -> int:
        running.set()
        release.wait(30)
        return item

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        assert running.wait(30)
        raise KeyboardInterrupt  # Ctrl-C reaches the caller while it waits for the items

    monkeypatch.setattr(optimize_module, "wait", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        side_by_side(work, [0, 1, 2], 2, stopping)
    assert stopping.is_set() and not release.is_set()  # returned while the items still run
    release.set()


def test_windows_to_fill_counts_the_dask_workers_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.optimize import windows_to_fill

    class Client:
        def __init__(self, threads: list[int]) -> None:
            self.threads = threads

        def nthreads(self) -> dict[str, int]:
            return {f"tcp://w{i}": n for i, n in enumerate(self.threads)}

    def under(runner: Any) -> None:
        monkeypatch.setattr(
            optimize_module.FlowRunContext, "get", lambda: SimpleNamespace(task_runner=runner)
        )

    dask = DaskTaskRunner(address="tcp://nowhere:8786")  # never connected: its client is given
    under(dask)
    dask._client = Client([1, 1])  # type: ignore[assignment]
    assert windows_to_fill(4, 10) == 2  # one batch fills both workers; one more window to overlap
    dask._client = Client([1] * 20)  # type: ignore[assignment]
    assert windows_to_fill(4, 10) == 6 and windows_to_fill(4, 3) == 3
    dask._client = Client([])  # type: ignore[assignment]  # an adaptive cluster with no worker yet
    assert windows_to_fill(4, 10) == 1
    under(ThreadPoolTaskRunner(max_workers=8))
    assert windows_to_fill(4, 10) == 1


def test_windows_at_once_below_one_is_refused(space_file: Path, project_db: str) -> None:
    with pytest.raises(ValueError, match="windows_at_once must be at least 1, got 0"):
        in_threads()(str(space_file), windows_at_once=0)


def test_the_cli_runs_a_study_with_its_windows_at_once_and_prints_json(
    space_file: Path, project_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[tuple[Any, ...]] = []

    def in_process(address: str | None, workers: int | None) -> Any:
        def run(*args: Any) -> Any:
            given.append(args)
            return in_threads()(*args)

        return run

    monkeypatch.setattr(optimize_module, "on_dask", in_process)
    args = ["optimize", str(space_file), "--windows-at-once", "2", "--out", str(tmp_path / "o"), "--json"]

    result = CliRunner().invoke(app, args)
    refused = CliRunner().invoke(app, ["optimize", str(space_file), "--windows-at-once", "0"])

    assert result.exit_code == 0, result.output
    assert given[0][-1] == 2
    assert [w["trials"] for w in json.loads(result.stdout)["windows"]] == [4, 4, 4]
    assert refused.exit_code == 2 and "--windows-at-once" in refused.stderr


@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGKILL, signal.SIGTERM], ids=["ctrl-c", "killed", "terminated"]
)
def test_a_study_stopped_mid_way_on_real_dask_workers_is_finished_by_the_same_command(
    stop: signal.Signals, space_file: Path, tmp_path: Path
) -> None:
    """A real `triplegain optimize` (two windows side by side on a real Dask worker) stopped once three
    trials have finished: by a signal to its whole process group (the Dask worker and the temporary Prefect
    server too), SIGINT as a terminal's Ctrl-C sends it or SIGKILL, or by SIGTERM to the command alone (as
    `kill PID` or a service manager sends it). Interrupted, it says how to resume and exits with 130;
    terminated, 143. No process of the command outlives it (a terminated one left its temporary server
    running). Each way no trial is recorded as failed by the stop, and the same command again finishes the
    study, keeping the trials that had finished."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": str(ROOT),
        "TRIPLEGAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'tg.db'}",
    }
    command = [sys.executable, "-c", PROBE, "optimize", str(space_file), "--workers", "1"]
    command += ["--windows-at-once", "2", "--out", str(tmp_path / "out")]
    studies = f"sqlite:///{tmp_path / 'tg-optuna.db'}"

    def trials() -> dict[str, list[tuple[int, Any, dict[str, Any]]]]:
        """Every study's trials (once no run is using the storage)."""
        storage = optuna.storages.RDBStorage(studies)
        try:
            found = {}
            for summary in all_studies(storage):
                study = optuna.load_study(study_name=summary.study_name, storage=storage)
                found[summary.study_name] = [(t.number, t.state, t.params) for t in study.trials]
            return found
        finally:
            storage.engine.dispose()

    def complete() -> list[tuple[str, int, dict[str, Any]]]:
        return [
            (name, number, params)
            for name, rows in trials().items()
            for number, state, params in rows
            if state == optuna.trial.TrialState.COMPLETE
        ]

    def completed_so_far() -> int:
        """Read only, straight from Optuna's tables (opening its storage would race the run making them)."""
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{tmp_path / 'tg-optuna.db'}?mode=ro", uri=True)
            ) as db:
                return int(db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0])
        except sqlite3.OperationalError:  # no file or no table yet
            return 0

    log = tmp_path / "interrupted.log"  # kept by pytest's tmp_path: what the interrupted run printed
    with log.open("w") as out:
        run = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while completed_so_far() < 3 and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert run.poll() is None, f"finished before it could be interrupted: {log.read_text()}"
            assert completed_so_far() >= 3, f"never got to three trials: {log.read_text()}"
            if stop == signal.SIGTERM:  # `kill PID`, a service manager's stop: the command alone
                os.kill(run.pid, stop)
            else:
                os.killpg(run.pid, stop)
            run.wait(timeout=120)
            outlived = time.monotonic() + 30  # the command stops what it started (SIGKILL: nothing is left)
            while _group_alive(run.pid) and time.monotonic() < outlived:
                time.sleep(0.2)
            assert not _group_alive(run.pid), "a process of the interrupted command outlived it"
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever of it outlived the interrupt
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    kept = complete()
    states = [state for rows in trials().values() for _, state, _ in rows]
    again = subprocess.run(
        [*command, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = log.read_text()

    if stop == signal.SIGINT:
        assert "exit 130" in output and "run the same command again to resume it" in " ".join(output.split())
        # Only the command heard it (flows.ctrl_c): the run is marked crashed in a server still up, and
        # neither a worker's traceback nor a request to a dead server is printed on the way out.
        assert "Crash detected! Execution was aborted by an interrupt signal" in output, output
        for noise in ("Traceback", "KeyboardInterrupt", "Error logging to API", "Connection refused"):
            assert noise not in output, output
    elif stop == signal.SIGTERM:  # the run recorded as crashed, the temporary server stopped (checked above)
        assert "exit 143" in output, output
        assert "Crash detected! Execution was aborted by a termination signal" in output, output
    else:
        assert run.returncode == -signal.SIGKILL
    assert optuna.trial.TrialState.FAIL not in states  # nothing told back as a failed trial by the stop
    assert optuna.trial.TrialState.COMPLETE in states and len(trials()) <= 3
    assert "exit 0" in again.stdout, again.stdout + again.stderr
    finished = json.loads(again.stdout[: again.stdout.rindex("exit 0")])
    assert [w["trials"] for w in finished["windows"]] == [4, 4, 4]
    assert [w["failed"] for w in finished["windows"]] == [0, 0, 0]
    after = {(name, number): params for name, rows in trials().items() for number, _, params in rows}
    assert all(after[(name, number)] == params for name, number, params in kept)  # kept, not run again
