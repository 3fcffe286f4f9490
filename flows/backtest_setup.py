"""The one backtest setup that the `backtest` flow and `triplegain backtest` share, without Prefect: the
command runs the domain's backtest in this process and never needs a Prefect server.

    from flows.backtest_setup import prepare_backtest
    result = prepare_backtest("2024-06-01T00:00Z", "2024-06-30T23:00Z").run()
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flows.settings import load_run_settings
from triplegain.backtest import (
    BacktestResult,
    LLMReplay,
    Progress,
    default_window,
    replay_setup,
    run_backtest,
)
from triplegain.cycle import parse_time
from triplegain.market import ReplaySource, shared_source
from triplegain.settings import Settings
from triplegain.storage import engine_for, unit_of_work
from triplegain.storage.llm_calls import load_recordings
from triplegain.storage.sentiment import refresh_times


@dataclass(frozen=True)
class BacktestSetup:
    """Everything a backtest needs: settings on replayed data, the window, recorded answers to replay."""

    settings: Settings
    source: ReplaySource
    start: datetime
    end: datetime
    replay: LLMReplay | None = None

    def run(
        self, rebalancing: bool = True, progress: Progress | None = None, reuse_analyses: bool = False
    ) -> BacktestResult:
        """Run the backtest this setup describes (`reuse_analyses`: see `run_backtest`)."""
        return run_backtest(
            self.source,
            self.start,
            self.end,
            self.settings,
            rebalancing,
            progress,
            self.replay,
            reuse_analyses,
        )


def replay_settings(
    config_file: str | None,
    symbols: list[str] | None,
    data_dir: str | None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """The configuration on replayed data (from `data_dir` if given), with `overrides` on top."""
    market: dict[str, Any] = {"source": "replay", **({"data_dir": data_dir} if data_dir else {})}
    extra = dict(overrides or {})
    extra["market"] = {**extra.get("market", {}), **market}
    return load_run_settings(config_file, symbols, **extra)


def prepare_backtest(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    config_file: str | None = None,
    replay_llm: bool = False,
    overrides: dict[str, Any] | None = None,
) -> BacktestSetup:
    """Settings (replay source), the window (default: the last 30 days of the data) and, with `replay_llm`,
    the decision models' answers recorded in the project database. `overrides` are settings sections laid
    over the configuration (`{"portfolio": {"drift_threshold_pct": 7.5}}`), as an optimisation trial's.
    The data files are parsed once per process (a worker running many trials reads them once)."""
    settings = replay_settings(config_file, symbols, data_dir, overrides)
    source = shared_source(settings.market)
    assert isinstance(source, ReplaySource)  # market.source is replay
    first, last = default_window(source, settings.market.symbols)
    first = parse_time(start) if start is not None else first
    last = parse_time(end) if end is not None else last
    replay = None
    if replay_llm:
        wanted = replay_setup(settings)
        with unit_of_work(engine_for(settings)) as session:
            recordings = load_recordings(session, wanted.recorded_models())
            times = refresh_times(session, first, last) if wanted.sentiment_models else []
        replay = replace(wanted, recordings=recordings, sentiment_times=times)
    return BacktestSetup(settings, source, first, last, replay)
