"""Hodl bags: the arithmetic against hand-computed cases, the caps, and what may never be sold."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.triplegain.test_breaker_actions import marks
from tests.triplegain.test_coordinator import account, analysis, signal
from triplegain.coordinator import coordinate
from triplegain.cycle_types import AccountState, Coordination, CoordinationInput
from triplegain.hodl import HodlBag, HodlState, allocate, due_purchases, record_purchase, reserved
from triplegain.models.enums import Action, CoordinatorState, PositionStatus, Side
from triplegain.models.trading import Position
from triplegain.rebalance import RebalanceTrade
from triplegain.settings import HodlSettings, Settings, load_settings

AT = datetime(2024, 6, 1, 12, tzinfo=UTC)
S = HodlSettings()


def closed(pnl: str, position_id: str = "p1") -> Position:
    return Position(
        id=position_id,
        symbol="BTC/USDT",
        size=Decimal("0.01"),
        entry_price=Decimal(60_000),
        opened_at=AT - timedelta(hours=3),
        status=PositionStatus.CLOSED,
        exit_price=Decimal(60_000) + Decimal(pnl) * 100,
        closed_at=AT,
        realized_pnl=Decimal(pnl),
        cycle_id="c1",
    )


def test_ten_percent_of_a_win_is_split_in_thirds() -> None:
    state, entries = allocate(HodlState(), closed("300"), AT, S)

    # 10% of 300 = 30.00 USD: 33.34% to USDT, 33.33% each to XRP and BTC
    assert {e.asset: e.usd for e in entries} == {
        "USDT": Decimal("10.0020"),
        "XRP": Decimal("9.9990"),
        "BTC": Decimal("9.9990"),
    }
    assert all(e.kind == "allocated" and e.position_id == "p1" for e in entries)
    assert state.day == "2024-06-01" and state.day_allocated_usd == Decimal("30.00")
    assert state.bags["BTC"].pending_usd == Decimal("9.9990") and state.bags["BTC"].amount == 0


def test_losses_and_small_wins_put_nothing_aside() -> None:
    for pnl in ("-50", "0", "0.99"):
        state, entries = allocate(HodlState(), closed(pnl), AT, S)
        assert entries == [] and state == HodlState()


def test_the_per_trade_and_daily_caps() -> None:
    big, _ = allocate(HodlState(), closed("50000"), AT, S)  # 10% is 5,000: capped at 1,000 a trade
    assert big.day_allocated_usd == Decimal(1000)

    state = big
    for i in range(5):
        state, _ = allocate(state, closed("50000", f"p{i + 2}"), AT + timedelta(hours=i + 1), S)
    assert state.day_allocated_usd == Decimal(5000)  # the daily limit: the fifth trade put in nothing
    spent = sum((b.pending_usd for b in state.bags.values()), Decimal(0))
    assert spent <= Decimal(5000)

    next_day, entries = allocate(state, closed("100", "p9"), AT + timedelta(days=1), S)
    assert next_day.day == "2024-06-02" and next_day.day_allocated_usd == Decimal("10.00") and entries


def test_purchases_wait_for_each_assets_threshold() -> None:
    state, _ = allocate(HodlState(), closed("300"), AT, S)  # ~10 USD each

    assert due_purchases(state, S) == {"USDT": Decimal("10.0020")}  # USDT at 1, XRP at 25, BTC at 15

    state, _ = allocate(state, closed("200", "p2"), AT, S)  # BTC pending now ~16.67
    assert set(due_purchases(state, S)) == {"USDT", "BTC"}


def test_a_purchase_turns_pending_into_holdings() -> None:
    state = HodlState(bags={"BTC": HodlBag(pending_usd=Decimal(20))})

    after, entry = record_purchase(state, "BTC", Decimal("19.90"), Decimal("0.00033"), Decimal(60_000), AT)

    assert after.bags["BTC"] == HodlBag(
        amount=Decimal("0.00033"), pending_usd=Decimal("0.10"), cost_usd=Decimal("19.90")
    )
    assert entry.kind == "bought" and entry.price == 60_000


def test_bags_and_their_pending_cash_are_reserved_beside_the_configured_amounts() -> None:
    state = HodlState(
        bags={
            "BTC": HodlBag(amount=Decimal("0.001"), pending_usd=Decimal(5)),
            "USDT": HodlBag(amount=Decimal(12)),
        }
    )

    held = reserved({"BTC": Decimal("0.5")}, state)

    assert held == {"BTC": Decimal("0.501"), "USDT": Decimal(17)}


def test_a_disabled_manager_puts_nothing_aside() -> None:
    state, entries = allocate(HodlState(), closed("300"), AT, HodlSettings(enabled=False))

    assert entries == [] and state == HodlState()


# Through the coordinator: a winning close fills the bags, the bags are bought, and nothing sells them.


def winner(size: str = "50") -> Position:
    """A long bought at 90 whose target (100.5) the factories' candles (high 101) reach: a profit."""
    return Position(
        id="w1",
        symbol="BTC/USDT",
        size=Decimal(size),
        entry_price=Decimal(90),
        stop_loss=Decimal(80),
        take_profit=Decimal("100.5"),
        opened_at=AT - timedelta(days=10),
        cycle_id="c0",
    )


def coordinate_once(acct: AccountState, settings: Settings, **fields: object) -> Coordination:
    request = CoordinationInput("c1", AT, acct, [analysis(signal(Action.HOLD))], **fields)  # type: ignore[arg-type]
    return coordinate(request, settings)


def test_a_winning_close_fills_the_bags_and_buys_what_reached_its_threshold() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})
    acct = account(balances={"USDT": Decimal(5_500), "BTC": Decimal(50)}, positions=[winner()])

    result = coordinate_once(acct, settings)

    (closed_position,) = result.closed_positions
    share = (closed_position.realized_pnl or Decimal(0)) / 10  # ~52 USD
    bags = result.hodl.bags
    assert bags["USDT"].amount == pytest.approx(share * Decimal("0.3334"), abs=Decimal("0.01"))  # held
    assert bags["BTC"].amount > 0 and bags["BTC"].pending_usd < 1  # ~17 USD reached 15: bought
    assert bags["XRP"].amount == 0 and bags["XRP"].pending_usd > 0  # ~17 USD waits for 25
    kinds = sorted((e.asset, e.kind) for e in result.hodl_entries)
    assert kinds == [
        ("BTC", "allocated"),
        ("BTC", "bought"),
        ("USDT", "allocated"),
        ("USDT", "held"),
        ("XRP", "allocated"),
    ]
    assert result.portfolio.balances["BTC"] == bags["BTC"].amount  # the position is gone, the bag remains
    assert any("of the profit put aside for the hodl bags" in n for n in result.notes), result.notes


BAG = HodlState(bags={"BTC": HodlBag(amount=Decimal(4), cost_usd=Decimal(400))})


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("max drawdown breaker", {"risk": marks("10000", "10000", "15000")}),
        ("weekly loss breaker", {"risk": marks("10000", "12000", "12000")}),
        ("deep drawdown ceiling", {"risk": marks("10000", "10000", "11765")}),
        ("halted", {"coordinator": CoordinatorState.HALTED, "risk": marks("10000", "10000", "10000")}),
    ],
)
def test_no_code_path_sells_a_bag(case: str, fields: dict[str, object]) -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})
    sell_all = RebalanceTrade(symbol="BTC/USDT", side=Side.SELL, amount_usd=Decimal(100_000))
    acct = account(balances={"USDT": Decimal(5_000), "BTC": Decimal(50)}, hodl=BAG, **fields)

    result = coordinate_once(acct, settings, rebalance=[sell_all])

    assert result.portfolio.balances["BTC"] >= Decimal(4), case  # everything else may go, the bag stays
    assert result.hodl.bags["BTC"].amount == Decimal(4)


def test_the_drawdown_is_measured_without_the_bags() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})
    bag = HodlState(bags={"BTC": HodlBag(amount=Decimal(20))})  # 2,000 USD at 100
    acct = account(
        balances={"USDT": Decimal(8_000), "BTC": Decimal(20)}, hodl=bag, risk=marks("8000", "8000", "8000")
    )

    result = coordinate_once(acct, settings)

    assert result.risk.peak_equity == Decimal(8_000)  # 10,000 equity, 2,000 of it in the bag
