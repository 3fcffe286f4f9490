"""`optimize` as a flow: trials as tasks on a real Dask LocalCluster (two worker processes, then one, with
the same result), outputs and artifacts, a failing trial, a resumed study, and the CLI's early checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
from prefect.task_runners import ThreadPoolTaskRunner
from typer.testing import CliRunner

import flows.optimize as optimize_module
from flows.cli import app
from flows.optimize import PROGRESS_KEY, RESULT_KEY, on_dask, optimize, trial_listener
from triplegain.optimize import OptimizationResult
from triplegain.settings import load_settings

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


def windows(result: OptimizationResult) -> list[tuple[Any, ...]]:
    return [(w.best_params, w.objective_in, w.objective_out, w.objective_default_out) for w in result.windows]


def test_trials_run_on_two_dask_workers_as_on_one_with_outputs_and_artifacts(
    project_db: str, space_file: Path, tmp_path: Path
) -> None:
    seen: list[int] = []
    with trial_listener(lambda done: seen.append(done.finished)):
        state = on_dask(workers=2)(
            str(space_file), study="two", output_dir=str(tmp_path / "two"), return_state=True
        )
    two: OptimizationResult = state.result()  # type: ignore[assignment]
    one = on_dask(workers=1)(str(space_file), study="one", output_dir=str(tmp_path / "one"))

    assert len(two.windows) == 3 and [w.trials for w in two.windows] == [4, 4, 4]
    assert windows(two) == windows(one)  # the same seed and space: the same study, whichever workers
    assert seen == [1, 2, 3, 4] * 3
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
    first = in_process(str(space_file), study="flaky", output_dir=str(tmp_path / "out"))
    ran = len(calls)

    again = in_process(str(space_file), study="flaky", output_dir=str(tmp_path / "out"))

    assert first.windows[0].failed == 1 and first.windows[0].trials == 4
    assert ran == 3 * (4 + 2)  # the failed trial counts towards the budget
    assert len(calls) - ran == 3 * 2  # the rerun ran only the test backtests: every trial was kept
    assert windows(again) == windows(first)


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
