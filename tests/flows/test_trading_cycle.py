"""The trading cycle end to end under the Prefect test harness."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from flows.market_watch import market_watch
from flows.trading_cycle import ARTIFACT_KEY, trading_cycle
from triplegain.errors import CycleError
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CycleStatus, OrderStatus
from triplegain.settings import load_settings
from triplegain.storage import create_db_engine, cycles, migrate, unit_of_work
from triplegain.storage.tables import (
    AgentOutputRow,
    CycleRow,
    FillRow,
    MessageRow,
    ModelVoteRow,
    OrderRow,
    PositionRow,
    RiskDecisionRow,
)

BUYING_HOUR = "2024-06-30T20:00Z"


def count(url: str, table: type) -> int:
    engine = create_db_engine(url)
    migrate(engine)
    with unit_of_work(engine) as s:
        n = s.scalar(select(func.count()).select_from(table)) or 0
    engine.dispose()
    return n


def test_one_cycle_end_to_end_persists_the_whole_chain(project_db: str) -> None:
    report = trading_cycle(at=BUYING_HOUR)

    assert isinstance(report, CycleReport) and report.status is CycleStatus.COMPLETED
    assert report.decided_by == "offline-deterministic"
    btc = report.outcome("BTC/USDT")
    assert btc.execution is not None and btc.execution.order.status is OrderStatus.FILLED
    for table, n in [
        (CycleRow, 1),
        (AgentOutputRow, 6),
        (ModelVoteRow, 2),
        (RiskDecisionRow, 1),
        (OrderRow, 1),
        (FillRow, 1),
        (PositionRow, 1),
    ]:
        assert count(project_db, table) == n, table.__tablename__
    assert count(project_db, MessageRow) == report.messages >= 8


def test_on_replay_data_runs_given_no_time_follow_the_replay_clock(project_db: str) -> None:
    """A served schedule passes no time: on replay data each cycle is the hour after the last one, so the
    account trades through the data; a watch given no time runs at the same replay hour."""
    first, second = trading_cycle(), trading_cycle()
    watch = market_watch()

    assert (first.cycle_id, second.cycle_id) == ("cycle-20240601T0000Z", "cycle-20240601T0100Z")
    assert not second.replayed and watch.cycle_id == "watch-20240601T0200Z"


def test_cycle_publishes_a_markdown_artifact(project_db: str) -> None:
    report = trading_cycle(at="2024-06-15T09:00Z")

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
        )
    latest = max(artifacts, key=lambda a: a.created)  # type: ignore[arg-type,return-value]
    assert latest.description == report.cycle_id
    assert "| BTC/USDT |" in str(latest.data) and "## Portfolio" in str(latest.data)
    # Each decision's reasoning: the evidence, every model's vote with its reasons, the agreement.
    assert "## Reasoning" in str(latest.data) and "### BTC/USDT" in str(latest.data)
    assert "  - offline: " in str(latest.data) and "agreement (" in str(latest.data)


def test_the_run_is_named_after_its_cycle_and_a_watch_after_its_slot(project_db: str) -> None:
    import logging

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    seen = Lines()
    logging.getLogger("prefect.flow_runs").addHandler(seen)
    try:
        cycle = trading_cycle(at="2024-06-14T09:00Z", return_state=True)
        watch = market_watch(at="2024-06-14T09:20Z", return_state=True)
        replayed = trading_cycle(return_state=True)  # the replay clock's hour, named before it starts too
    finally:
        logging.getLogger("prefect.flow_runs").removeHandler(seen)

    with get_client(sync_client=True) as client:
        names = [
            client.read_flow_run(s.state_details.flow_run_id).name  # type: ignore[arg-type]
            for s in (cycle, watch, replayed)
        ]
    assert names == ["cycle-20240614T0900Z", "watch-20240614T0920Z", "cycle-20240614T1000Z"]
    # Named before the first log line: "Beginning flow run" already says what runs.
    beginning = [line for line in seen.lines if line.startswith("Beginning flow run")]
    assert beginning == [
        f"Beginning flow run {name!r} for flow {flow!r}"
        for name, flow in zip(names, ["trading-cycle", "market-watch", "trading-cycle"], strict=True)
    ]


def test_cycle_publishes_a_positions_and_allocation_table(project_db: str) -> None:
    import json

    from flows.trading_cycle import POSITIONS_ARTIFACT_KEY

    report = trading_cycle(at=BUYING_HOUR)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[POSITIONS_ARTIFACT_KEY]))
        )
    latest = max(artifacts, key=lambda a: a.created)  # type: ignore[arg-type,return-value]
    assert latest.type == "table" and latest.description == f"{report.cycle_id}: positions and allocation"
    table = json.loads(latest.data) if isinstance(latest.data, str) else latest.data
    by_name = {(row["kind"], row["name"]): row for row in table}
    assert set(by_name) == {("asset", "USDT"), ("asset", "BTC"), ("position", "BTC/USDT")}
    shares = [float(by_name[("asset", a)]["allocation_pct"]) for a in ("USDT", "BTC")]
    assert abs(sum(shares) - 100) < 0.02 and 0 < shares[1] <= 20  # a position is at most 20% of equity
    assert by_name[("position", "BTC/USDT")]["unrealized_pnl"].startswith(("+", "-"))


def test_same_hour_twice_places_no_second_order(project_db: str) -> None:
    first = trading_cycle(at=BUYING_HOUR)
    second = trading_cycle(at=datetime(2024, 6, 30, 20, 30, tzinfo=UTC))

    assert second.replayed and not first.replayed
    assert second.cycle_id == first.cycle_id
    assert count(project_db, OrderRow) == 1 and count(project_db, CycleRow) == 1


def test_other_symbols_on_an_hour_that_ran_say_so(project_db: str, caplog: pytest.LogCaptureFixture) -> None:
    trading_cycle(at=BUYING_HOUR)

    with caplog.at_level(logging.WARNING):
        again = trading_cycle(at=BUYING_HOUR, symbols=["XRP/USDT"])

    assert again.replayed and [o.symbol for o in again.symbols] == ["BTC/USDT", "XRP/USDT"]
    assert "already ran for BTC/USDT, XRP/USDT" in caplog.text and "--symbols XRP/USDT" in caplog.text


def test_symbol_without_data_is_skipped(project_db: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bundled = Path(__file__).resolve().parents[2] / "triplegain" / "market" / "data" / "BTC_USDT-1h.csv"
    (data / "BTC_USDT-1h.csv").write_text(bundled.read_text())
    config = tmp_path / "tg.yaml"
    config.write_text(f"market:\n  data_dir: {data}\n")

    report = trading_cycle(at=BUYING_HOUR, config_file=str(config))

    assert report.status is CycleStatus.PARTIAL
    assert "XRP/USDT: no data" in (report.outcome("XRP/USDT").error or "")
    assert report.outcome("BTC/USDT").signal is not None


def test_every_symbol_failing_fails_the_flow_and_stores_nothing(project_db: str) -> None:
    with pytest.raises(CycleError, match=r"every symbol failed.*need at least 50"):
        trading_cycle(at="2024-04-02T00:00Z")

    assert count(project_db, CycleRow) == 0


def test_unknown_symbol_fails_before_any_work(project_db: str) -> None:
    with pytest.raises(Exception, match=r"unknown symbol 'DOGE/USDT'"):
        trading_cycle(at=BUYING_HOUR, symbols=["DOGE/USDT"])


def test_database_outage_during_save_is_retried_and_writes_once(
    project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cycles.save_cycle
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cycles, "save_cycle", flaky)

    report = trading_cycle(at=BUYING_HOUR)

    assert len(calls) == 2
    assert report.outcome("BTC/USDT").execution is not None
    assert count(project_db, OrderRow) == 1 and count(project_db, FillRow) == 1


def test_database_url_comes_from_the_block_when_saved(tmp_path: Path, project_db: str) -> None:
    from blocks.database import DatabaseConfig

    block_db = f"sqlite:///{tmp_path / 'from-block.db'}"
    DatabaseConfig(url=block_db).save("triplegain-database", overwrite=True)  # type: ignore[arg-type]
    try:
        trading_cycle(at="2024-06-10T10:00Z")
    finally:
        DatabaseConfig.delete("triplegain-database")

    assert count(block_db, CycleRow) == 1
    assert count(project_db, CycleRow) == 0
    assert load_settings().database_url.get_secret_value() == project_db
