"""What `triplegain optimize` checks before anything starts (no Prefect here): the search space against the
settings, and the walk-forward windows against the data. The CLI calls it before a temporary server or a
Dask cluster starts, so a typo in the space fails in a second; the flow calls it again for itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flows.backtest_setup import replay_settings
from triplegain.cycle import normalize_at
from triplegain.market import ReplaySource, shared_source
from triplegain.optimize import SearchSpace, Window, check_space, load_space, walk_forward_windows
from triplegain.settings import Settings


@dataclass(frozen=True)
class OptimizationSetup:
    """The checked space, the study's name, the base settings and the windows."""

    name: str
    space: SearchSpace
    settings: Settings
    windows: list[Window]

    @property
    def trials(self) -> int:
        """Trials over all windows."""
        return self.space.trials * len(self.windows)


def study_name(space_file: str, study: str | None = None) -> str:
    """The study's name: as given, or the space file's name without its extension."""
    return study or Path(space_file).stem


def prepare_optimization(
    space_file: str,
    config_file: str | None = None,
    symbols: list[str] | None = None,
    data_dir: str | None = None,
    study: str | None = None,
) -> OptimizationSetup:
    """Load and check the space (every key a setting, every bound valid), and cut the data into windows;
    SearchSpaceError, ConfigError or ValueError naming what is wrong."""
    space = load_space(space_file)
    settings = replay_settings(config_file, symbols, data_dir)
    check_space(space, lambda overrides: replay_settings(config_file, symbols, data_dir, overrides))
    name = study_name(space_file, study)
    if not name.strip() or "/" in name:
        raise ValueError(f"study name {name!r}: give a non-empty name without '/'")
    return OptimizationSetup(name, space, settings, windows_for(space, settings))


def windows_for(space: SearchSpace, settings: Settings) -> list[Window]:
    """The walk-forward windows within the data, from the first hour every symbol can be traded."""
    symbols = settings.market.symbols
    source = shared_source(settings.market)
    assert isinstance(source, ReplaySource)  # base_settings replays
    first = source.ready(symbols, settings.market.min_candles)
    first = max(first, normalize_at(space.start)) if space.start else first
    last = min(source.end(symbols), normalize_at(space.end)) if space.end else source.end(symbols)
    return walk_forward_windows(first, last, space.train_days, space.test_days)
