"""Storage on SQLite and on the real PostgreSQL server: schema, round trips, atomicity, concurrency."""

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select

from triplegain.coordinator import coordinate
from triplegain.cycle import analyze_symbol, build_report, cycle_id_for
from triplegain.cycle_types import AccountState, CoordinationInput
from triplegain.degradation import HealthOutcome, HealthUpdate
from triplegain.errors import ConcurrentCycleError
from triplegain.hodl import HodlBag, HodlState
from triplegain.llm.breaker import BreakerPosition, ProviderBreaker
from triplegain.market import ReplaySource
from triplegain.models.cycle import CycleReport
from triplegain.settings import Settings, load_settings
from triplegain.storage import migrate, positions, unit_of_work
from triplegain.storage.accounts import load_account, save_llm_breakers, update_health
from triplegain.storage.cycles import CycleRecord, load_report, save_cycle
from triplegain.storage.hodl import load_hodl_history
from triplegain.storage.tables import (
    AgentOutputRow,
    Base,
    CoordinatorStateRow,
    CycleRow,
    DeadLetterRow,
    FillRow,
    ModelVoteRow,
    OrderRow,
    PortfolioSnapshotRow,
    PositionRow,
    RiskDecisionRow,
)

DATA_END = datetime(2024, 6, 30, 23, tzinfo=UTC)
BUYING_HOUR = datetime(2024, 6, 30, 20, tzinfo=UTC)  # the offline model buys BTC here on the bundled data
ALL_TABLES = (
    CycleRow,
    AgentOutputRow,
    ModelVoteRow,
    RiskDecisionRow,
    OrderRow,
    FillRow,
    PositionRow,
    PortfolioSnapshotRow,
)


def counts(engine: Engine) -> dict[str, int]:
    with unit_of_work(engine) as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0 for t in ALL_TABLES}


def run(
    engine: Engine, settings: Settings, at: datetime, replay: ReplaySource
) -> tuple[CycleReport, object, object, AccountState]:
    with unit_of_work(engine) as s:
        account = load_account(s, settings.broker.initial_balances)
    analyses = [
        analyze_symbol(replay, sym, at, account.regimes.get(sym), settings) for sym in settings.market.symbols
    ]
    result = coordinate(CoordinationInput(cycle_id_for(at), at, account, analyses), settings)
    report = build_report(cycle_id_for(at), at, at, analyses, result)
    return report, analyses, result, account


def save(
    engine: Engine, report: CycleReport, analyses: object, result: object, account: AccountState
) -> None:
    with unit_of_work(engine) as s:
        save_cycle(s, CycleRecord(report, analyses, result, account))  # type: ignore[arg-type]


@pytest.fixture
def cfg() -> Settings:
    return load_settings()


def test_migration_matches_the_models_and_is_idempotent(engine: Engine) -> None:
    migrate(engine)

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_fresh_database_gives_the_initial_account(engine: Engine, cfg: Settings) -> None:
    with unit_of_work(engine) as s:
        account = load_account(s, cfg.broker.initial_balances)

    assert account.balances == {"USDT": Decimal(10_000)} and account.positions == [] and account.version == 0


def test_cycle_chain_round_trips(engine: Engine, cfg: Settings, replay: ReplaySource) -> None:
    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)
    save(engine, report, analyses, result, account)

    with unit_of_work(engine) as s:
        loaded = load_account(s, cfg.broker.initial_balances)
        stored = load_report(s, report.cycle_id)

    assert stored == report
    assert loaded.balances == result.portfolio.balances  # type: ignore[attr-defined]
    assert loaded.positions == result.portfolio.positions  # type: ignore[attr-defined]
    assert loaded.risk == result.risk and loaded.regimes == result.regimes  # type: ignore[attr-defined]
    assert loaded.version == 1 and loaded.last_cycle_at == BUYING_HOUR
    assert counts(engine) == {
        "cycles": 1,
        "agent_outputs": 6,
        "model_votes": 2,
        "risk_decisions": 1,
        "orders": 1,
        "fills": 1,
        "positions": 1,
        "portfolio_snapshots": 1,
    }


def test_exact_decimals_survive_storage(engine: Engine, cfg: Settings, replay: ReplaySource) -> None:
    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)
    save(engine, report, analyses, result, account)

    with unit_of_work(engine) as s:
        fill = s.scalars(select(FillRow)).one()

    expected = report.outcome("BTC/USDT").execution.fill  # type: ignore[union-attr]
    assert (fill.price, fill.size, fill.fee) == (expected.price, expected.size, expected.fee)  # type: ignore[union-attr]


def test_position_opened_then_closed_is_one_row(engine: Engine, cfg: Settings, replay: ReplaySource) -> None:
    hour = BUYING_HOUR + timedelta(hours=1)  # the position bought here closes before the data ends
    report, analyses, result, account = run(engine, cfg, hour, replay)
    save(engine, report, analyses, result, account)
    first = result.portfolio.positions[0].id  # type: ignore[attr-defined]
    while any(p.id == first for p in result.portfolio.positions):  # type: ignore[attr-defined]
        assert hour < DATA_END, "the position never closed"
        hour += timedelta(hours=1)
        report, analyses, result, account = run(engine, cfg, hour, replay)
        save(engine, report, analyses, result, account)

    with unit_of_work(engine) as s:
        rows = s.scalars(select(PositionRow).where(PositionRow.id == first)).all()
    assert len(rows) == 1 and rows[0].status == "closed" and rows[0].closed_cycle_id == report.cycle_id
    assert rows[0].realized_pnl is not None and rows[0].close_reason in ("stop_loss", "take_profit", "signal")


def test_crash_mid_write_leaves_nothing(
    engine: Engine, cfg: Settings, replay: ReplaySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)

    def explode(*args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(positions, "_add_fill_and_positions", explode)
    with pytest.raises(RuntimeError, match="power cut"):
        save(engine, report, analyses, result, account)

    assert set(counts(engine).values()) == {0}
    with unit_of_work(engine) as s:
        assert s.get(CoordinatorStateRow, 1) is None


def test_two_cycles_from_the_same_account_cannot_both_commit(
    engine: Engine, cfg: Settings, replay: ReplaySource
) -> None:
    first = run(engine, cfg, BUYING_HOUR, replay)
    second = run(engine, cfg, BUYING_HOUR + timedelta(hours=1), replay)
    save(engine, *first)

    with pytest.raises(ConcurrentCycleError):
        save(engine, *second)

    assert counts(engine)["cycles"] == 1


def test_later_cycle_after_a_commit_advances_the_version(
    engine: Engine, cfg: Settings, replay: ReplaySource
) -> None:
    save(engine, *run(engine, cfg, BUYING_HOUR, replay))
    save(engine, *run(engine, cfg, BUYING_HOUR + timedelta(hours=1), replay))

    with unit_of_work(engine) as s:
        assert load_account(s, cfg.broker.initial_balances).version == 2


def test_outages_before_any_run_count_and_two_first_cycles_still_cannot_both_commit(
    engine: Engine, cfg: Settings, replay: ReplaySource
) -> None:
    outage = HealthUpdate(
        (HealthOutcome(kind="api", ok=False, what="exchange: balances unanswered"),),
        cfg.degradation,
        BUYING_HOUR,
    )

    def count() -> None:
        with unit_of_work(engine) as s:
            update_health(s, outage)

    threads = [threading.Thread(target=count) for _ in range(3)]  # three runs meeting the outage at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    first = run(engine, cfg, BUYING_HOUR, replay)
    second = run(engine, cfg, BUYING_HOUR, replay)

    assert first[3].version == 0 and first[3].health.api_failures == 3  # all counted, the account fresh
    save(engine, *first)
    with pytest.raises(ConcurrentCycleError):
        save(engine, *second)
    with unit_of_work(engine) as s:
        assert load_account(s, cfg.broker.initial_balances).version == 1


def test_llm_breakers_saved_before_any_run_are_kept(engine: Engine, cfg: Settings) -> None:
    tripped = ProviderBreaker(position=BreakerPosition.OPEN, failures=3, opened_at=BUYING_HOUR)
    with unit_of_work(engine) as s:  # a sentiment refresh before the account's first cycle
        save_llm_breakers(s, {"deepseek": tripped})

    with unit_of_work(engine) as s:
        account = load_account(s, cfg.broker.initial_balances)
    assert account.llm_breakers == {"deepseek": tripped} and account.version == 0


def test_the_same_cycle_cannot_be_stored_twice(engine: Engine, cfg: Settings, replay: ReplaySource) -> None:
    save(engine, *run(engine, cfg, BUYING_HOUR, replay))
    again = run(engine, cfg, BUYING_HOUR, replay)  # loads the new version, same cycle id and order ids

    with pytest.raises(ConcurrentCycleError):
        save(engine, *again)

    assert counts(engine)["cycles"] == 1 and counts(engine)["orders"] == 1


def test_dead_letters_are_persisted_with_the_cycle(
    engine: Engine, cfg: Settings, replay: ReplaySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    import triplegain.coordinator

    async def broken(self: object, message: object) -> None:
        raise ConnectionError("report sink down")

    monkeypatch.setattr(triplegain.coordinator._Coordinator, "on_execution_event", broken)
    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)
    save(engine, report, analyses, result, account)

    with unit_of_work(engine) as s:
        [row] = s.scalars(select(DeadLetterRow)).all()
    assert row.cycle_id == report.cycle_id and row.topic == "execution_events" and row.attempts == 2
    assert row.message["payload"]["order"]["symbol"] == "BTC/USDT" and report.dead_letters == 1


def test_the_newest_still_valid_sentiment_is_found(engine: Engine) -> None:
    from triplegain.models.analysis import SentimentReport
    from triplegain.storage.sentiment import latest_sentiment, save_sentiment

    t0 = datetime(2022, 5, 10, 12, tzinfo=UTC)

    def report(at: datetime, symbol: str = "BTC/USDT", minutes: int = 60) -> SentimentReport:
        return SentimentReport(
            symbol=symbol,
            timestamp=at,
            valid_until=at + timedelta(minutes=minutes),
            bias="bearish",
            overall_score=-0.4,
            confidence=0.6,
            fear_greed="fear",
            reasoning=f"at {at:%H:%M}",
            model_used="m",
        )  # type: ignore[arg-type]

    with unit_of_work(engine) as s:
        for r in (report(t0), report(t0 + timedelta(minutes=30)), report(t0, "XRP/USDT", minutes=10)):
            save_sentiment(s, r)

    with unit_of_work(engine) as s:
        at_45 = latest_sentiment(s, "BTC/USDT", t0 + timedelta(minutes=45))
        before = latest_sentiment(s, "BTC/USDT", t0 - timedelta(minutes=1))
        expired = latest_sentiment(s, "BTC/USDT", t0 + timedelta(minutes=91))
        xrp = latest_sentiment(s, "XRP/USDT", t0 + timedelta(minutes=30))
    assert at_45 is not None and at_45.reasoning == "at 12:30"  # valid 30 min later: not a 5-minute TTL
    assert before is None and expired is None and xrp is None


def test_hodl_bags_and_their_history_survive_storage(
    engine: Engine, cfg: Settings, replay: ReplaySource
) -> None:
    waiting = HodlState(
        bags={"BTC": HodlBag(pending_usd=Decimal(20)), "USDT": HodlBag(pending_usd=Decimal(3))}
    )
    with unit_of_work(engine) as s:
        account = replace(load_account(s, cfg.broker.initial_balances), hodl=waiting)
    at = BUYING_HOUR - timedelta(hours=2)
    analyses = [analyze_symbol(replay, sym, at, None, cfg) for sym in cfg.market.symbols]
    result = coordinate(CoordinationInput(cycle_id_for(at), at, account, analyses), cfg)
    save(engine, build_report(cycle_id_for(at), at, at, analyses, result), analyses, result, account)

    with unit_of_work(engine) as s:
        loaded = load_account(s, cfg.broker.initial_balances)
        history = load_hodl_history(s)
    assert loaded.hodl == result.hodl and loaded.hodl.bags["BTC"].amount > 0
    assert loaded.hodl.bags["USDT"].amount == Decimal(3)
    assert sorted((e.asset, e.kind) for e in history) == [("BTC", "bought"), ("USDT", "held")]
