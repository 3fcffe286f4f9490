"""Walk-forward search, the domain part: the space checked before any trial, the windows, the ask/tell loop
(budget, order, determinism, failed and interrupted trials, resume), the drawdown limit, the storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from sqlalchemy import text

from triplegain.backtest_metrics import Metrics
from triplegain.optimize import (
    INTERRUPTED,
    OptimizationResult,
    Proposal,
    SearchSpace,
    SearchSpaceError,
    Window,
    best_trial,
    check_space,
    chosen_config,
    configured,
    finished,
    load_space,
    open_study,
    search,
    walk_forward_windows,
    window_result,
)
from triplegain.settings import load_settings
from triplegain.storage import create_db_engine, migrate
from triplegain.storage.studies import study_location, study_storage

SPACE = {
    "trials": 6,
    "batch": 2,
    "seed": 3,
    "max_drawdown_pct": 20,
    "params": {
        "portfolio.drift_threshold_pct": {"low": 5, "high": 20, "step": 2.5},
        "technical.min_net_votes": {"choices": [3, 4, 5]},
    },
}


def space(**changes: Any) -> SearchSpace:
    return SearchSpace.model_validate({**SPACE, **changes})


def metrics(sharpe: float, drawdown: float = 10.0) -> Metrics:
    return Metrics(
        start_equity=10_000,
        end_equity=10_000 + sharpe * 100,
        total_return_pct=sharpe,
        annualised_return_pct=sharpe * 10,
        max_drawdown_pct=drawdown,
        sharpe=sharpe,
        sortino=sharpe,
    )


def fake_backtest(params: dict[str, Any]) -> Metrics:
    """Best near a 12.5-point threshold with 4 votes; a threshold of 20 draws down too far."""
    threshold, votes = params["portfolio.drift_threshold_pct"], params["technical.min_net_votes"]
    drawdown = 30.0 if threshold >= 20 else 10.0
    return metrics(5 - abs(threshold - 12.5) / 2.5 - abs(votes - 4), drawdown)


def memory_study(s: SearchSpace, name: str = "s", window: int = 0) -> optuna.Study:
    return open_study(name, optuna.storages.InMemoryStorage(), s, window)


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_a_space_file_loads_with_its_defaults(tmp_path: Path) -> None:
    loaded = load_space(write(tmp_path, {"params": SPACE["params"]}))

    assert loaded.objective == "sharpe" and loaded.max_drawdown_pct == 25.0 and loaded.trials == 20
    assert loaded.params["technical.min_net_votes"].choices == [3, 4, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"params": {"portfolio.drift_threshold_pct": {"low": 10, "high": 10}}}, "empty range: low 10.0"),
        ({"params": {"risk.x": {"choices": []}}}, "params.risk.x: choices is empty"),
        ({"params": {"a.b": {"low": 1, "high": 2, "choices": [1]}}}, "either choices or low/high"),
        ({"params": {"a.b": {"low": -1, "high": 2, "log": True}}}, "a log range needs low > 0"),
        ({"params": {}}, "params: Dictionary should have at least 1 item"),
        ({"objective": "profit", "params": SPACE["params"]}, "objective: Input should be 'sharpe'"),
        ({"trails": 5, "params": SPACE["params"]}, "trails: Extra inputs are not permitted"),
        ("params: [1, 2", "not YAML"),
        ("- 1\n- 2\n", "expected a mapping with `params`"),
    ],
)
def test_a_bad_space_file_is_refused_naming_the_problem(
    tmp_path: Path, content: object, message: str
) -> None:
    path = write(tmp_path, content)

    with pytest.raises(SearchSpaceError, match="invalid search space") as raised:
        load_space(path)

    assert str(path) in str(raised.value) and message in str(raised.value)


def test_a_missing_space_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match=r"nope.yaml: invalid search space: cannot read"):
        load_space(tmp_path / "nope.yaml")


def test_every_key_must_be_a_setting_and_every_bound_a_valid_value() -> None:
    bad = space(
        params={
            "portfolio.drift_threshold_pct": {"low": 5, "high": 20},
            "portfolio.drift_threshold": {"low": 5, "high": 20},
            "portfolo.x": {"low": 1, "high": 2},
            "portfolio": {"low": 1, "high": 2},
            "decision.offline.evidence_edge": {"low": 0.5, "high": 3},
        }
    )

    with pytest.raises(SearchSpaceError) as raised:
        check_space(bad, lambda overrides: load_settings(**overrides))

    problems = raised.value.problems
    assert len(problems) == 4, problems  # the valid key is not among them
    assert problems[0].startswith("portfolio.drift_threshold: unknown setting 'drift_threshold' in portfolio")
    assert "drift_threshold_pct" in problems[0]  # the known keys are listed
    assert problems[1].startswith("portfolo.x: unknown setting 'portfolo' in the settings")
    assert problems[2] == "portfolio: a section, not a setting: name one of its keys"
    assert problems[3].startswith("decision.offline.evidence_edge: 3.0 is not a valid value")
    assert "less than or equal to 1" in problems[3]


def test_windows_roll_forward_by_the_test_window_and_never_overlap_their_tests() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)
    windows = walk_forward_windows(first, first + timedelta(days=20) - timedelta(hours=1), 10, 3)

    assert len(windows) == 3  # starting on days 0, 3 and 6: 6 + 10 + 3 <= 20 < 9 + 10 + 3
    hour = timedelta(hours=1)
    for w, after in pairwise(windows):
        assert after.test_start == w.test_end + hour  # contiguous, unseen test windows
    for w in windows:
        assert w.train_end + hour == w.test_start
        assert w.train_end - w.train_start == timedelta(days=10) - hour
        assert w.test_end - w.test_start == timedelta(days=3) - hour
    assert windows[-1].test_end <= first + timedelta(days=20) - hour


def test_history_too_short_for_one_window_is_an_error_saying_so() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)

    with pytest.raises(ValueError, match="holds no 10-day training window followed by a 5-day test window"):
        walk_forward_windows(first, first + timedelta(days=14), 10, 5)


def test_the_search_spends_its_budget_in_batches_and_learns() -> None:
    s = space(trials=12, batch=3)
    study = memory_study(s)
    batches: list[int] = []
    numbers: list[int] = []
    reports: list[int] = []

    def evaluate(batch: list[Proposal]) -> list[Metrics | BaseException]:
        batches.append(len(batch))
        numbers.extend(p.number for p in batch)
        return [fake_backtest(p.params) for p in batch]

    search(study, s, evaluate, on_trial=lambda done: reports.append(done.finished))

    assert batches == [3, 3, 3, 3] and reports == list(range(1, 13))
    assert numbers == [t.number for t in study.trials]  # the numbers the study, the logs and the UI show
    best = best_trial(study, s)
    assert best is not None and best.params["portfolio.drift_threshold_pct"] < 20  # within the limit
    assert best.user_attrs["sharpe"] == best.value


def test_the_same_seed_gives_the_same_trials_whatever_order_the_batch_finishes_in() -> None:
    s = space()

    def run(reverse: bool) -> list[tuple[dict[str, Any], float | None]]:
        study = memory_study(s)

        def evaluate(batch: list[Proposal]) -> list[Metrics | BaseException]:
            order = list(reversed(batch)) if reverse else batch  # workers finish in any order
            done = {id(p): fake_backtest(p.params) for p in order}
            return [done[id(p)] for p in batch]

        search(study, s, evaluate)
        return [(t.params, t.value) for t in study.trials]

    assert run(False) == run(True)
    assert run(False) != [(t.params, t.value) for t in _other_seed(s).trials]


def _other_seed(s: SearchSpace) -> optuna.Study:
    other = s.model_copy(update={"seed": s.seed + 1})
    study = memory_study(other)
    search(study, other, lambda batch: [fake_backtest(p.params) for p in batch])
    return study


def test_a_trial_that_raises_is_recorded_as_failed_and_the_study_goes_on() -> None:
    s = space(trials=4, batch=2)
    study = memory_study(s)
    errors: list[str | None] = []

    def evaluate(batch: list[Proposal]) -> list[Metrics | BaseException]:
        out: list[Metrics | BaseException] = [fake_backtest(p.params) for p in batch]
        if len(study.trials) <= 2:
            out[0] = RuntimeError("no candles")
        return out

    search(study, s, evaluate, on_trial=lambda done: errors.append(done.error))

    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and len(finished(study)) == 4
    assert study.trials[0].user_attrs["error"] == "RuntimeError: no candles"
    assert errors[0] == "RuntimeError: no candles" and errors[1:] == [None, None, None]


def test_an_interrupted_search_resumes_without_losing_or_rerunning_a_finished_trial(tmp_path: Path) -> None:
    s = space(trials=6, batch=2)
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'tg.db'}")
    calls: list[Proposal] = []

    def dies_in_the_second_batch(batch: list[Proposal]) -> list[Metrics | BaseException]:
        if calls:
            raise KeyboardInterrupt  # the process is stopped while the batch runs
        calls.extend(batch)
        return [fake_backtest(p.params) for p in batch]

    with study_storage(settings) as storage, pytest.raises(KeyboardInterrupt):
        search(open_study("s", storage, s, 0), s, dies_in_the_second_batch)
    with study_storage(settings) as storage:  # a new process: the study from the database
        first = [(t.number, t.params, t.value) for t in finished(open_study("s", storage, s, 0))]
        resumed = open_study("s", storage, s, 0)
        search(resumed, s, lambda batch: [fake_backtest(p.params) for p in batch])
        trials = resumed.trials

    assert first == [(t.number, t.params, t.value) for t in trials[:2]]  # kept, not run again
    assert [t.state for t in trials[2:4]] == [optuna.trial.TrialState.FAIL] * 2
    assert trials[2].user_attrs["error"] == INTERRUPTED
    assert len([t for t in trials if t.state.is_finished()]) == 8  # 6 for the budget + 2 interrupted
    assert len(trials) == 8


def test_the_configured_first_trial_interrupted_is_run_again_on_resume() -> None:
    s = space(trials=4, batch=2)
    storage = optuna.storages.InMemoryStorage()
    start = {"portfolio.drift_threshold_pct": 10.0, "technical.min_net_votes": 4}

    def dies(batch: list[Proposal]) -> list[Metrics | BaseException]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(open_study("s", storage, s, 0), s, dies, start_with=start)
    resumed = open_study("s", storage, s, 0)

    def evaluate(batch: list[Proposal]) -> list[Metrics | BaseException]:
        return [fake_backtest(p.params) for p in batch]

    search(resumed, s, evaluate, start_with=start)
    search(resumed, s, evaluate, start_with=start)  # done: no-op

    done = finished(resumed)
    assert len(done) == 4 and done[0].params == start  # the configured settings were measured after all
    assert sum(1 for t in resumed.trials if t.params == start) == 2  # the interrupted one and its rerun


def test_a_study_resumed_with_another_space_is_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    open_study("s", storage, space(), 0)

    with pytest.raises(SearchSpaceError, match="created with another search space"):
        open_study("s", storage, space(seed=99), 0)
    open_study("s", storage, space(trials=50), 0)  # more trials on the same space is a resume


def test_no_trial_within_the_drawdown_limit_leaves_the_window_without_settings() -> None:
    s = space(trials=2, batch=2)
    study = memory_study(s)
    search(study, s, lambda batch: [metrics(9.0, drawdown=40.0) for _ in batch])
    window = Window(0, *(datetime(2024, 1, d, tzinfo=UTC) for d in (1, 5, 6, 8)))

    result = window_result(study, s, window, None, metrics(1.0))

    assert best_trial(study, s) is None
    assert result.best_params is None and result.infeasible == 2 and result.gap is None
    assert result.objective_default_out == 1.0


def test_the_chosen_settings_are_a_config_file_on_top_of_the_base(
    tmp_path: Path, default_decisions: None
) -> None:
    window = Window(0, *(datetime(2024, 1, d, tzinfo=UTC) for d in (1, 5, 6, 8)))
    s = space()
    study = memory_study(s)
    search(study, s, lambda batch: [fake_backtest(p.params) for p in batch])
    chosen = best_trial(study, s)
    assert chosen is not None
    result = OptimizationResult(
        study="s",
        objective="sharpe",
        max_drawdown_pct=20,
        space=s,
        windows=[window_result(study, s, window, metrics(2.0), metrics(1.0))],
        chosen=dict(chosen.params),
    )
    config = tmp_path / "chosen.yaml"
    config.write_text(chosen_config(result, {"portfolio": {"min_interval_hours": 2}}))

    loaded = load_settings(config)

    assert loaded.portfolio.drift_threshold_pct == chosen.params["portfolio.drift_threshold_pct"]
    assert loaded.technical.min_net_votes == chosen.params["technical.min_net_votes"]
    assert loaded.portfolio.min_interval_hours == 2  # the base configuration kept
    assert result.wins() == 1 and result.windows[0].gap == pytest.approx(chosen.value - 2.0)


def test_sqlite_studies_live_beside_the_project_database() -> None:
    assert study_location("sqlite:////data/trading.db") == "sqlite:////data/trading-optuna.db"
    assert study_location("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(ValueError, match="in-memory database cannot keep a study"):
        study_location("sqlite://")


def test_studies_on_postgresql_live_in_their_own_schema_of_the_project_database(
    postgres_server_url: str | None,
) -> None:
    if postgres_server_url is None:
        pytest.skip("needs TRIPLEGAIN_TEST_POSTGRES_URL")
    engine = create_db_engine(postgres_server_url)
    migrate(engine)
    with engine.connect() as c:
        ours = c.execute(text("SELECT version_num FROM public.alembic_version")).scalar_one()
    s = space(trials=2)
    settings = load_settings(database_url=postgres_server_url)

    with study_storage(settings) as storage:
        search(open_study("pg", storage, s, 0), s, lambda batch: [fake_backtest(p.params) for p in batch])
    with study_storage(settings) as storage:
        assert len(finished(open_study("pg", storage, s, 0))) == 2

    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM public.alembic_version")).scalar_one() == ours
        assert c.execute(text("SELECT count(*) FROM optuna.trials")).scalar_one() == 2
    engine.dispose()


def test_every_window_starts_from_the_configured_settings_where_they_lie_in_the_space() -> None:
    settings = load_settings()
    s = space(
        params={
            **SPACE["params"],
            "risk.derisk_from_pct": {"low": 1, "high": 5},  # configured: half the 20% limit, outside
        }
    )
    start = configured(settings, s)
    study = memory_study(s)

    search(study, s, lambda batch: [fake_backtest(p.params) for p in batch], start_with=start)

    assert start == {
        "portfolio.drift_threshold_pct": 10.0,
        "technical.min_net_votes": settings.technical.min_net_votes,
    }
    first = study.trials[0].params
    assert {k: first[k] for k in start} == start and 1 <= first["risk.derisk_from_pct"] <= 5
    assert all(t.params != first for t in study.trials[1:])  # proposed, not repeated
