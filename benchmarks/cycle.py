"""How much a trading cycle costs: through Prefect, called directly, and as the universe grows.

Prints (no assertions; figures for the closing note and for comparing changes):
1. wall time of one 2-symbol cycle run as a Prefect flow (temporary server already started, fresh
   SQLite database, distinct hours so no run is a stored replay), median of N;
2. the same cycle's domain work called directly (analysis + coordination), and with the SQLite commit;
3. their ratio;
4. domain-only time per cycle over 24 consecutive hours for 2, 10 and 50 symbols, the extra symbols made
   from the two real series shifted back in time by whole days.

Usage: python benchmarks/cycle.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="triplegain-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triplegain.coordinator import coordinate
from triplegain.cycle import analyze_symbol, build_report, cycle_id_for, run_cycle
from triplegain.cycle_types import CoordinationInput, fresh_account, next_account
from triplegain.market import ReplaySource
from triplegain.settings import Settings, SymbolSpec, load_settings
from triplegain.storage import create_db_engine, migrate, unit_of_work
from triplegain.storage.accounts import load_account
from triplegain.storage.cycles import CycleRecord, save_cycle

START = datetime(2024, 6, 10, tzinfo=UTC)
DAY = 86_400


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


def time_prefect(runs: int, db_dir: Path) -> list[float]:
    os.environ["TRIPLEGAIN_DATABASE_URL"] = f"sqlite:///{db_dir / 'prefect-bench.db'}"
    from flows.trading_cycle import trading_cycle

    trading_cycle(at=START - timedelta(hours=1))  # starts the temporary server; not timed
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        trading_cycle(at=START + timedelta(hours=i))
        times.append(time.perf_counter() - t0)
    return times


def time_direct(runs: int, settings: Settings, db_dir: Path) -> tuple[list[float], list[float]]:
    source = ReplaySource()
    engine = create_db_engine(f"sqlite:///{db_dir / 'direct-bench.db'}")
    migrate(engine)
    domain, with_db = [], []
    for i in range(runs):
        at = START + timedelta(hours=i)
        t0 = time.perf_counter()
        with unit_of_work(engine) as s:
            account = load_account(s, settings.broker.initial_balances)
        t1 = time.perf_counter()
        analyses = [
            analyze_symbol(source, sym, at, account.regimes.get(sym), settings)
            for sym in settings.market.symbols
        ]
        result = coordinate(CoordinationInput(cycle_id_for(at), at, account, analyses), settings)
        report = build_report(cycle_id_for(at), at, at, analyses, result)
        t2 = time.perf_counter()
        with unit_of_work(engine) as s:
            save_cycle(s, CycleRecord(report, analyses, result, account))
        t3 = time.perf_counter()
        domain.append(t2 - t1)
        with_db.append(t3 - t0)
    return domain, with_db


def universe(n: int) -> tuple[Settings, ReplaySource]:
    base = load_settings()
    source = ReplaySource()
    specs = dict(base.market.symbol_specs)
    symbols = ["BTC/USDT", "XRP/USDT"]
    for k in range(n - 2):
        origin = symbols[k % 2]
        name = f"S{k:02d}{origin.split('/')[0]}/USDT"
        source.add_series(name, source.series(origin).shifted(-(k // 2 + 1) * DAY))
        specs[name] = SymbolSpec.model_validate(specs[origin].model_dump())
        symbols.append(name)
    market = base.market.model_dump() | {
        "symbols": symbols,
        "symbol_specs": {k: v.model_dump() for k, v in specs.items()},
    }
    return load_settings(market=market), source


def time_universe(n: int) -> float:
    settings, source = universe(n)
    account = fresh_account(settings)
    at = datetime(2024, 5, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    for h in range(24):
        _, result = run_cycle(source, account, at + timedelta(hours=h), settings)
        account = next_account(account, result)
    return (time.perf_counter() - t0) / 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        db_dir = Path(tmp)
        direct, direct_db = time_direct(args.runs, settings, db_dir)
        prefect = time_prefect(args.runs, db_dir)
    p, d, dd = statistics.median(prefect), statistics.median(direct), statistics.median(direct_db)
    print(f"one 2-symbol cycle, median of {args.runs} (cpu count {os.cpu_count()})")
    print(f"  through Prefect (flow + tasks + SQLite commit + artifact) {ms(p)}")
    print(f"  domain work called directly                            {ms(d)}")
    print(f"  domain work + SQLite load and commit                   {ms(dd)}")
    print(f"  ratio Prefect / direct domain                          {p / d:9.1f} x")
    print(f"  ratio Prefect / direct with SQLite                     {p / dd:9.1f} x")
    print("domain-only time per cycle, 24 consecutive hours")
    for n in (2, 10, 50):
        per = time_universe(n)
        print(f"  {n:3d} symbols {ms(per)} per cycle, {ms(per / n)} per symbol")


if __name__ == "__main__":
    main()
