"""Analyses kept across backtests on the same candles: what makes many optimisation trials cheap.

An hour's analysis of a symbol is a pure function of the candles closed by then, the symbol's previous
regime state and the settings sections it reads: nothing of the account, the orders or the time it runs.
Optimisation trials replay the same hours with settings that differ mostly elsewhere (drift thresholds,
risk limits), so a worker process keeps what it computed, at two levels:

- the market read (snapshot and offline technical report, or the data problem that skipped the symbol),
  keyed by symbol and hour under the `market`, `indicators` and `technical` sections;
- the whole offline analysis (regime, registered agents, the offline model's signal), keyed by symbol,
  hour and previous regime state under every section the analysis reads (`ANALYSIS_SECTIONS`; every
  setting once an analysis agent is registered, since each is handed the whole settings).

A trial whose settings change a section in a key computes afresh and keeps that too: a hit is always an
input the analysis saw before, so a memoised backtest is the same backtest to the bit (tests compare
them, and prove the analysis reads no section outside its key). Each level of one source is bounded,
least recently used dropped first: `backtest.memo_hours` market reads (about 11 KB each) and twice as
many analyses (about 7 KB each), across every settings fingerprint.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime

from triplegain.agents import registry
from triplegain.cycle import read_market
from triplegain.cycle_types import SymbolAnalysis
from triplegain.errors import MarketDataError
from triplegain.market.source import MarketDataSource
from triplegain.models.analysis import RegimeState, TechnicalReport
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings

MARKET_SECTIONS = ("market", "indicators", "technical")
ANALYSIS_SECTIONS = (*MARKET_SECTIONS, "regime", "decision", "risk", "broker")
MarketRead = tuple[MarketSnapshot, TechnicalReport] | MarketDataError


@dataclass
class _Entries:
    """One source's kept results, least recently used first, and how often a lookup found one. Backtests
    in threads share it: the lock guards the bookkeeping only, never a computation (two threads missing
    the same key both compute it, and get the same result)."""

    limit: int
    kept: OrderedDict[Hashable, object] = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable, compute: Callable[[], object]) -> object:
        with self.lock:
            if key in self.kept:
                self.hits += 1
                self.kept.move_to_end(key)
                return self.kept[key]
            self.misses += 1
        value = compute()
        with self.lock:
            self.kept[key] = value
            while len(self.kept) > self.limit:
                self.kept.popitem(last=False)
        return value


@dataclass
class _Kept:
    """One source's two levels, each bounded on its own: analyses (small, one per configuration of the
    analysis sections) never push out the market reads (large, shared by every configuration)."""

    reads: _Entries
    analyses: _Entries

    def bound(self, hours: int) -> None:
        self.reads.limit, self.analyses.limit = hours, hours * ANALYSES_PER_READ


ANALYSES_PER_READ = 2  # configurations of the analysis sections kept per symbol-hour's market read
_by_source: weakref.WeakKeyDictionary[MarketDataSource, _Kept] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def fingerprint(settings: Settings, sections: tuple[str, ...] | None) -> str:
    """The named sections (every setting when None) as canonical JSON: equal exactly when they are."""
    if sections is None:
        return json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    dumped = {name: getattr(settings, name).model_dump(mode="json") for name in sections}
    return json.dumps(dumped, sort_keys=True)


class AnalysisMemo:
    """The analyses of one source under one configuration, shared with every other backtest in this
    process on that source (`AnalysisMemo(source, settings)` for each backtest)."""

    def __init__(self, source: MarketDataSource, settings: Settings) -> None:
        with _registry_lock:
            kept = _by_source.get(source)
            if kept is None:
                kept = _by_source[source] = _Kept(_Entries(0), _Entries(0))
            kept.bound(settings.backtest.memo_hours)
        self.source, self.settings, self._kept = source, settings, kept
        self._market = fingerprint(settings, MARKET_SECTIONS)
        # A registered agent is handed the whole settings: with one, any setting may change the analysis.
        self._agents = registry.ANALYSIS_AGENTS
        self._analysis = fingerprint(settings, None if self._agents else ANALYSIS_SECTIONS)

    @property
    def hits(self) -> int:
        """Lookups on this source, by any backtest, that found a kept result."""
        return self._kept.reads.hits + self._kept.analyses.hits

    @property
    def misses(self) -> int:
        """Lookups on this source that computed (and kept) their result."""
        return self._kept.reads.misses + self._kept.analyses.misses

    @property
    def sizes(self) -> tuple[int, int]:
        """How many market reads and analyses of this source are kept now."""
        return len(self._kept.reads.kept), len(self._kept.analyses.kept)

    def reader(
        self, source: MarketDataSource, symbol: str, at: datetime, settings: Settings
    ) -> tuple[MarketSnapshot, TechnicalReport]:
        """`cycle.read_market` once per symbol and hour under these market sections (a `MarketReader`); a
        MarketDataError it raised is raised again, without the first traceback, each time."""
        if source is not self.source or settings is not self.settings:
            raise ValueError("this AnalysisMemo was made for another source or other settings")

        def attempt() -> MarketRead:
            try:
                return read_market(source, symbol, at, settings)
            except MarketDataError as e:
                return e

        got = self._kept.reads.get((self._market, symbol, at), attempt)
        if isinstance(got, MarketDataError):
            raise got.with_traceback(None)
        assert isinstance(got, tuple)
        return got

    def analysis(
        self,
        symbol: str,
        at: datetime,
        previous: RegimeState | None,
        analyze: Callable[[], SymbolAnalysis],
    ) -> SymbolAnalysis:
        """`analyze()` once per symbol, hour and previous regime state under these analysis sections."""
        key = (self._analysis, self._agents, symbol, at, previous)
        got = self._kept.analyses.get(key, analyze)
        assert isinstance(got, SymbolAnalysis)
        return got
