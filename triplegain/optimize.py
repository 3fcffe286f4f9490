"""Walk-forward parameter search: which settings would have done best, and would they have held up later?

A search space (YAML) names settings keys and their ranges. The history is cut into windows that roll
forward: a training window, then the test window right after it. In each window Optuna (seeded TPE) proposes
settings, each trial is a backtest on the training window, and the best feasible trial (its maximum drawdown
within the limit) is then backtested on the test window it never saw, beside the unchanged settings on the
same test window. In-sample against out-of-sample is the overfitting gap; the unchanged settings say whether
searching helped at all.

Trials are proposed in batches of a fixed size (`batch`) and told back in the order they were asked, so the
same seed and space give the same study whether the batch runs on one worker or on twenty. Each window's
study lives in an Optuna storage: an interrupted search resumes, finished trials are never run again, a
trial that was running when the process died is recorded as failed, and a trial that raised is recorded as
failed while the study goes on.

The domain part (this module) knows nothing of Prefect or Dask: the caller evaluates each batch of trials
(`Evaluate`), on a Dask cluster in `flows.optimize`, in this process in tests.

    space:  portfolio.drift_threshold_pct: {low: 5, high: 20, step: 2.5}
            technical.min_net_votes: {choices: [3, 4, 5]}
            decision.offline.evidence_edge: {low: 0.5, high: 3, log: true}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from triplegain.backtest_metrics import Metrics
from triplegain.errors import ConfigError, ConfigProblem, TripleGainError
from triplegain.settings import Settings

Objective = Literal["sharpe", "sortino", "total_return_pct", "calmar"]
OBJECTIVES: dict[str, Callable[[Metrics], float]] = {
    "sharpe": lambda m: m.sharpe,
    "sortino": lambda m: m.sortino,
    "total_return_pct": lambda m: m.total_return_pct,
    # annualised return per point of drawdown; a drawdown under 1 point counts as 1 (no division blow-up)
    "calmar": lambda m: m.annualised_return_pct / max(m.max_drawdown_pct, 1.0),
}
INTERRUPTED = "interrupted: the process stopped before the trial finished"
SPACE_ATTR = "triplegain_space"


class SearchSpaceError(TripleGainError):
    """The search space is invalid; every problem names the key (or the file) and what is wrong."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{where}: invalid search space: " + "; ".join(problems))


class ParamSpec(BaseModel):
    """One setting's range: `low`..`high` (with `step`, `log`, `integer`), or a list of `choices`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0)
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices is empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (or choices)")
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} is not below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an integer range needs whole low and high")
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution trials are drawn from."""
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        low, high = self._bounds()
        if self.integer:
            step = int(self.step) if self.step is not None else 1
            return optuna.distributions.IntDistribution(int(low), int(high), log=self.log, step=step)
        return optuna.distributions.FloatDistribution(low, high, log=self.log, step=self.step)

    def _bounds(self) -> tuple[float, float]:
        if self.low is None or self.high is None:  # _shape guarantees both without choices
            raise ValueError("needs low and high (or choices)")
        return self.low, self.high

    def extremes(self) -> list[Any]:
        """The values checked against the settings before any trial: the bounds, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        low, high = self._bounds()
        return [int(low), int(high)] if self.integer else [low, high]


class SearchSpace(BaseModel):
    """What to search, how, and on which windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: Objective = Field("sharpe", description="Maximised on the training window")
    max_drawdown_pct: float | None = Field(
        25.0, gt=0, description="A trial whose training drawdown exceeds this is infeasible (None: no limit)"
    )
    trials: int = Field(20, ge=1, description="Trials per window (finished or failed)")
    batch: int = Field(4, ge=1, description="Trials proposed at once and run in parallel")
    seed: int = 42
    train_days: int = Field(90, ge=1)
    test_days: int = Field(30, ge=1)
    start: AwareDatetime | None = Field(None, description="First training hour (default: the data's first)")
    end: AwareDatetime | None = Field(None, description="Last test hour (default: the data's last)")
    params: dict[str, ParamSpec] = Field(min_length=1)

    def digest(self) -> str:
        """A fingerprint of what the trials of a study depend on (a resumed study must match it)."""
        fixed = self.model_dump(mode="json", include={"objective", "max_drawdown_pct", "params", "seed"})
        return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


def load_space(path: str | Path) -> SearchSpace:
    """Read a search space from YAML; SearchSpaceError naming the file and each problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SearchSpaceError(str(path), [f"cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise SearchSpaceError(str(path), [f"not YAML: {e}"]) from None
    if not isinstance(raw, dict):
        raise SearchSpaceError(str(path), ["expected a mapping with `params` (and objective, trials, ...)"])
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'space'}: "
            + str(err["msg"]).removeprefix("Value error, ")
            for err in e.errors()
        ]
        raise SearchSpaceError(str(path), problems) from None


def nested(params: dict[str, Any]) -> dict[str, Any]:
    """{"portfolio.drift_threshold_pct": 10} -> {"portfolio": {"drift_threshold_pct": 10}}."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        *sections, leaf = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return out


def merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`b` over `a`, section by section."""
    out = dict(a)
    for key, value in b.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def check_space(space: SearchSpace, settings_with: Callable[[dict[str, Any]], object]) -> None:
    """Every key must be a setting and every bound or choice a valid value for it, before any trial runs:
    `settings_with(overrides)` builds the settings (raising ConfigError). Raises SearchSpaceError naming
    each key that fails."""
    problems: list[str] = []
    for key, spec in space.params.items():
        where = _unknown_part(key, Settings)
        if where is not None:
            problems.append(f"{key}: {where}")
            continue
        for value in spec.extremes():
            try:
                settings_with(nested({key: value}))
            except ConfigError as e:
                problems.append(f"{key}: {value!r} is not a valid value: " + "; ".join(_messages(e.problems)))
    if problems:
        raise SearchSpaceError("params", problems)


def _messages(problems: Sequence[ConfigProblem]) -> list[str]:
    return [str(p) for p in problems]


def _unknown_part(key: str, model: type[BaseModel]) -> str | None:
    """Why `key` names no setting (the unknown part and what exists there), or None when it does."""
    parts = key.split(".")
    current: type[BaseModel] = model
    for i, part in enumerate(parts):
        fields = current.model_fields
        if part not in fields:
            known = ", ".join(sorted(fields))
            place = ".".join(parts[:i]) or "the settings"
            return f"unknown setting {part!r} in {place} (known: {known})"
        annotation = fields[part].annotation
        last = i == len(parts) - 1
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if last:
            return "a section, not a setting: name one of its keys" if is_model else None
        if not is_model:
            return f"{'.'.join(parts[: i + 1])} is a setting, not a section"
        current = annotation  # type: ignore[assignment]
    return None


@dataclass(frozen=True)
class Window:
    """One step of the walk forward: search on [train_start, train_end], check on [test_start, test_end]."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime


def walk_forward_windows(first: datetime, last: datetime, train_days: int, test_days: int) -> list[Window]:
    """Training windows of `train_days`, each followed by a test window of `test_days`, rolling forward by
    the test window so every test window is unseen and they do not overlap. ValueError if none fits."""
    hour = timedelta(hours=1)
    train, test = timedelta(days=train_days), timedelta(days=test_days)
    windows: list[Window] = []
    start = first
    while start + train + test - hour <= last:
        windows.append(
            Window(len(windows), start, start + train - hour, start + train, start + train + test - hour)
        )
        start += test
    if not windows:
        raise ValueError(
            f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} holds no {train_days}-day training window "
            f"followed by a {test_days}-day test window: shorten them or give more history"
        )
    return windows


def score(metrics: Metrics, objective: str) -> float:
    """The objective's value for a backtest's metrics."""
    return OBJECTIVES[objective](metrics)


def feasible(metrics: Metrics, space: SearchSpace) -> bool:
    """Within the drawdown limit (always, when there is none)."""
    return space.max_drawdown_pct is None or metrics.max_drawdown_pct <= space.max_drawdown_pct


@dataclass(frozen=True)
class Proposal:
    """One trial Optuna proposed: its number in the window's study (what the progress and the logs name it
    by) and its settings (dotted keys)."""

    number: int
    params: dict[str, Any]


# The backtests of a batch of proposals on the training window, in the order given: each a Metrics, or the
# exception its backtest raised.
Evaluate = Callable[[list[Proposal]], Sequence[Metrics | BaseException]]


def open_study(
    name: str, storage: optuna.storages.BaseStorage, space: SearchSpace, window: int
) -> optuna.Study:
    """The window's study, created or resumed; SearchSpaceError when it was created with another space."""
    sampler = optuna.samplers.TPESampler(seed=space.seed + window)  # trials set their drawdown constraint
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, direction="maximize", load_if_exists=True
    )
    recorded = study.user_attrs.get(SPACE_ATTR)
    if recorded is None:
        study.set_user_attr(SPACE_ATTR, space.digest())
    elif recorded != space.digest():
        raise SearchSpaceError(
            name,
            [
                "this study was created with another search space (objective, limit, params or seed); "
                "give a new study name, or the space it was created with"
            ],
        )
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that completed, or failed by raising: the budget counts them. A trial interrupted by the
    process stopping is not among them (it is run again, with new settings, on resume)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=states)
    return [t for t in trials if t.user_attrs.get("error") != INTERRUPTED]


def fail_interrupted(study: optuna.Study) -> int:
    """Record trials left running by a process that stopped as failed; returns how many."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study._storage.set_trial_user_attr(trial._trial_id, "error", INTERRUPTED)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(running)


@dataclass(frozen=True)
class TrialDone:
    """What `search` reports after each trial it told back."""

    window: int
    number: int
    finished: int
    budget: int
    value: float | None
    error: str | None


def configured(settings: Settings, space: SearchSpace) -> dict[str, Any]:
    """The configured value of each searched key that lies in its range (or among its choices): the
    settings as they stand, to be the first trial of every window so the search is measured against them."""
    values: dict[str, Any] = {}
    for key, spec in space.params.items():
        node: Any = settings
        for part in key.split("."):
            node = getattr(node, part)
        distribution = spec.distribution()
        value = node
        try:
            if isinstance(distribution, optuna.distributions.FloatDistribution):
                value = float(value)
            elif isinstance(distribution, optuna.distributions.IntDistribution):
                value = int(value) if float(value) == int(value) else None
            inside = value is not None and distribution._contains(distribution.to_internal_repr(value))
        except (ValueError, TypeError):  # unset (None), not a number, or not among the choices
            inside = False
        if inside:
            values[key] = value
    return values


def search(
    study: optuna.Study,
    space: SearchSpace,
    evaluate: Evaluate,
    window: int = 0,
    on_trial: Callable[[TrialDone], None] | None = None,
    start_with: dict[str, Any] | None = None,
) -> None:
    """Run trials until the window's budget is spent: ask a batch, evaluate it, tell each back in order.
    A new study's first trial is `start_with` (the configured settings; keys it lacks are sampled)."""
    fail_interrupted(study)
    distributions = {key: spec.distribution() for key, spec in space.params.items()}
    if start_with and not _tried(study, start_with):
        study.enqueue_trial(start_with)
    while (done := len(finished(study))) < space.trials:
        asked = [study.ask(distributions) for _ in range(min(space.batch, space.trials - done))]
        outcomes = evaluate([Proposal(t.number, dict(t.params)) for t in asked])
        if len(outcomes) != len(asked):
            raise RuntimeError(f"evaluated {len(outcomes)} trials of a batch of {len(asked)}")
        for trial, outcome in zip(asked, outcomes, strict=True):
            done += 1
            if isinstance(outcome, BaseException):
                error = f"{type(outcome).__name__}: {outcome}"
                trial.set_user_attr("error", error[:500])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                report = TrialDone(window, trial.number, done, space.trials, None, error)
            else:
                value = score(outcome, space.objective)
                for key, number in outcome.model_dump().items():
                    trial.set_user_attr(key, number)
                limit = space.max_drawdown_pct
                excess = outcome.max_drawdown_pct - limit if limit else 0.0
                trial.set_user_attr("constraint", excess)
                trial.set_constraint("max_drawdown", excess)  # TPE learns what is feasible
                study.tell(trial, value)
                report = TrialDone(window, trial.number, done, space.trials, value, None)
            if on_trial is not None:
                on_trial(report)


def _tried(study: optuna.Study, params: dict[str, Any]) -> bool:
    """Whether a trial with `params` finished or waits to run (one interrupted does not count)."""
    states = (optuna.trial.TrialState.WAITING,)
    candidates = [*finished(study), *study.get_trials(deepcopy=False, states=states)]
    for trial in candidates:
        given = trial.params or trial.system_attrs.get("fixed_params", {})  # a waiting trial's are fixed
        if given and all(given.get(k) == v for k, v in params.items()):
            return True
    return False


def best_trial(study: optuna.Study, space: SearchSpace) -> optuna.trial.FrozenTrial | None:
    """The completed trial with the highest objective among those within the drawdown limit (the earliest
    on a tie); None when no trial completed within it."""
    candidates = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and float(t.user_attrs.get("constraint", 0.0)) <= 0
    ]
    return max(candidates, key=lambda t: (t.value, -t.number), default=None)


def trial_metrics(trial: optuna.trial.FrozenTrial) -> Metrics:
    """The training backtest's metrics, as the trial recorded them."""
    return Metrics.model_validate({k: trial.user_attrs[k] for k in Metrics.model_fields})


class WindowResult(BaseModel):
    """One window: the search on its training window and the check on its test window."""

    model_config = ConfigDict(frozen=True)

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    trials: int
    failed: int
    infeasible: int
    best_params: dict[str, Any] | None = Field(description="None: no trial within the drawdown limit")
    in_sample: Metrics | None = Field(description="The best trial on its training window")
    out_of_sample: Metrics | None = Field(description="The best trial's settings on the test window")
    default_out_of_sample: Metrics = Field(description="The settings as configured, on the test window")
    objective_in: float | None
    objective_out: float | None
    objective_default_out: float

    @property
    def gap(self) -> float | None:
        """In-sample minus out-of-sample objective: how much of the training result was fitted noise."""
        if self.objective_in is None or self.objective_out is None:
            return None
        return self.objective_in - self.objective_out


class OptimizationResult(BaseModel):
    """Every window's search and check, and the settings chosen (the last window's best)."""

    model_config = ConfigDict(frozen=True)

    study: str
    objective: str
    max_drawdown_pct: float | None
    space: SearchSpace
    windows: list[WindowResult]
    chosen: dict[str, Any] = Field(description="The latest window's best settings, dotted keys")
    outputs: dict[str, str] = Field(default_factory=dict, description="Files written: json, settings, png")

    def wins(self) -> int:
        """Test windows where the searched settings beat the configured ones."""
        return sum(
            1
            for w in self.windows
            if w.objective_out is not None and w.objective_out > w.objective_default_out
        )


def window_result(
    study: optuna.Study,
    space: SearchSpace,
    window: Window,
    out_of_sample: Metrics | None,
    default_out_of_sample: Metrics,
) -> WindowResult:
    """Summarise a window whose search finished and whose test backtests ran."""
    trials = finished(study)
    best = best_trial(study, space)
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    infeasible = sum(1 for t in complete if float(t.user_attrs.get("constraint", 0.0)) > 0)
    in_sample = trial_metrics(best) if best is not None else None
    return WindowResult(
        index=window.index,
        train_start=window.train_start,
        train_end=window.train_end,
        test_start=window.test_start,
        test_end=window.test_end,
        trials=len(trials),
        failed=len(trials) - len(complete),
        infeasible=infeasible,
        best_params=dict(best.params) if best is not None else None,
        in_sample=in_sample,
        out_of_sample=out_of_sample,
        default_out_of_sample=default_out_of_sample,
        objective_in=score(in_sample, space.objective) if in_sample is not None else None,
        objective_out=score(out_of_sample, space.objective) if out_of_sample is not None else None,
        objective_default_out=score(default_out_of_sample, space.objective),
    )


def describe_params(params: dict[str, Any] | None) -> str:
    """Searched settings as one line (`portfolio.drift_threshold_pct=12.5, ...`), or why there are none."""
    if not params:
        return "none within the limit"
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def chosen_config(result: OptimizationResult, base: dict[str, Any] | None = None) -> str:
    """The chosen settings as YAML that `--config` accepts: the base configuration with them on top."""
    header = (
        f"# chosen by `triplegain optimize` (study {result.study}, objective {result.objective}): the best "
        f"settings of the latest training window\n"
    )
    return header + yaml.safe_dump(merged(base or {}, nested(result.chosen)), sort_keys=True)
