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
them, and prove the analysis reads no section outside its key). The entries of one source, across every
settings fingerprint, are bounded (`backtest.memo_entries`, least recently used dropped first).
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


_by_source: weakref.WeakKeyDictionary[MarketDataSource, _Entries] = weakref.WeakKeyDictionary()
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
        limit = settings.backtest.memo_entries
        with _registry_lock:
            entries = _by_source.get(source)
            if entries is None:
                entries = _by_source[source] = _Entries(limit)
            entries.limit = limit
        self.source, self.settings, self._entries = source, settings, entries
        self._market = fingerprint(settings, MARKET_SECTIONS)
        # A registered agent is handed the whole settings: with one, any setting may change the analysis.
        self._agents = registry.ANALYSIS_AGENTS
        self._analysis = fingerprint(settings, None if self._agents else ANALYSIS_SECTIONS)

    @property
    def hits(self) -> int:
        """Lookups on this source, by any backtest, that found a kept result."""
        return self._entries.hits

    @property
    def misses(self) -> int:
        """Lookups on this source that computed (and kept) their result."""
        return self._entries.misses

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

        got = self._entries.get(("market", self._market, symbol, at), attempt)
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
        key = ("analysis", self._analysis, self._agents, symbol, at, previous)
        got = self._entries.get(key, analyze)
        assert isinstance(got, SymbolAnalysis)
        return got
