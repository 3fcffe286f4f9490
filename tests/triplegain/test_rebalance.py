"""Rebalancing arithmetic on real balances and prices, the cost-aware rule, and DCA batching."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from triplegain.models.enums import Side
from triplegain.models.trading import Position
from triplegain.rebalance import RebalanceTrade, allocation, dca_batches, decide
from triplegain.settings import BrokerSettings, PortfolioSettings, load_settings

NOW = datetime(2024, 7, 1, tzinfo=UTC)
# The bundled data's last closes (2024-06-30 23:00 candles).
PRICES = {"BTC/USDT": Decimal("62772.01"), "XRP/USDT": Decimal("0.4761")}
S = PortfolioSettings(drift_threshold_pct=Decimal(5))  # the figures below were worked by hand at 5 points
B = BrokerSettings()


def test_allocation_values_each_asset_at_its_price() -> None:
    current = allocation({"USDT": Decimal(5000), "BTC": Decimal("0.05"), "XRP": Decimal(4000)}, PRICES, [], S)

    btc, xrp, usdt = (current.asset(a) for a in ("BTC", "XRP", "USDT"))
    assert btc.value_usd == Decimal("3138.6005") and xrp.value_usd == Decimal("1904.4000")
    assert current.equity_usd == Decimal("10043.0005")
    assert btc.pct.quantize(Decimal("0.01")) == Decimal("31.25") and usdt.pct.quantize(
        Decimal("0.01")
    ) == Decimal("49.79")
    assert current.max_drift_pct.quantize(Decimal("0.01")) == Decimal("16.45")  # USDT: 49.79% vs 33.34%


def test_a_drifted_portfolio_gets_trades_to_target_sells_first() -> None:
    heavy_btc = allocation(
        {"USDT": Decimal(1000), "BTC": Decimal("0.1"), "XRP": Decimal(6000)}, PRICES, [], S
    )
    # BTC 6277.20 (58.9%), XRP 2856.60 (26.8%), USDT 1000 (9.4%) of 10133.80

    decision = decide(heavy_btc, S, B, NOW)

    assert decision.action == "rebalance"
    assert [(t.symbol, t.side) for t in decision.trades] == [("BTC/USDT", Side.SELL), ("XRP/USDT", Side.BUY)]
    target = heavy_btc.equity_usd * Decimal("0.3333")
    assert decision.trades[0].amount_usd == (Decimal("6277.201") - target).quantize(
        Decimal("0.01"), "ROUND_DOWN"
    )
    assert decision.trades[1].amount_usd == (target - Decimal("2856.6")).quantize(
        Decimal("0.01"), "ROUND_DOWN"
    )
    assert decision.trades[0].cost_usd == (decision.trades[0].amount_usd * Decimal("0.0036")).quantize(
        Decimal("0.01")
    )


def test_hodl_bags_and_position_holdings_are_not_rebalanced() -> None:
    hodl = PortfolioSettings(hodl={"BTC": Decimal("0.05")})
    position = Position(
        id="p", symbol="XRP/USDT", size=Decimal(1000), entry_price=Decimal("0.5"), opened_at=NOW, cycle_id="c"
    )

    current = allocation(
        {"USDT": Decimal(5000), "BTC": Decimal("0.1"), "XRP": Decimal(3000)}, PRICES, [position], hodl
    )

    assert current.asset("BTC").amount == Decimal("0.05") and current.asset("BTC").excluded == Decimal("0.05")
    assert current.asset("XRP").amount == Decimal(2000) and current.asset("XRP").excluded == Decimal(1000)


def test_no_rebalance_below_the_threshold_within_the_interval_or_without_equity() -> None:
    balanced = allocation(
        {"USDT": Decimal(3334), "BTC": Decimal("0.0531"), "XRP": Decimal(7000)}, PRICES, [], S
    )
    assert decide(balanced, S, B, NOW).reason.startswith("max drift")
    drifted = allocation({"USDT": Decimal(10_000)}, PRICES, [], S)
    recent = decide(drifted, S, B, NOW, last_rebalance_at=NOW - timedelta(hours=23))
    assert recent.action == "none" and "next is allowed from 2024-07-01 01:00" in recent.reason
    assert decide(drifted, S, B, NOW, last_rebalance_at=NOW - timedelta(hours=24)).action == "rebalance"
    assert decide(drifted, S, B, NOW, NOW - timedelta(hours=1), force=True).action == "rebalance"
    empty = allocation({"USDT": Decimal(0)}, PRICES, [], S)
    assert empty.assets[0].pct == empty.assets[0].target_pct  # zero equity: no false drift
    assert decide(empty, S, B, NOW, force=True).reason.startswith("nothing to rebalance")


def test_a_missing_price_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no price for XRP/USDT"):
        allocation({"USDT": Decimal(10)}, {"BTC/USDT": Decimal(1)}, [], S)


def test_a_trade_that_removes_less_drift_beyond_the_band_than_it_costs_is_skipped() -> None:
    # USDT is 5.004 points over target, 0.38 USD beyond the 5% band; BTC and XRP sit within the band.
    current = allocation(
        {"USDT": Decimal("3829"), "BTC": Decimal("0.0494"), "XRP": Decimal("6419")}, PRICES, [], S
    )
    assert Decimal(5) <= current.max_drift_pct < Decimal("5.01")

    decision = decide(current, S, B, NOW)

    assert decision.action == "none" and decision.reason == "drift found, but no trade is worth making"
    assert len(decision.skipped) == 2 and all(
        "exceeds the drift beyond the 5% band" in s for s in decision.skipped
    )
    forced = decide(current, S, B, NOW, force=True)  # forced: all drift counts, so it trades to target
    assert forced.action == "rebalance" and len(forced.trades) == 2


def test_trades_under_the_minimum_are_skipped_and_said() -> None:
    current = allocation(
        {"USDT": Decimal("6100"), "BTC": Decimal("0.0487"), "XRP": Decimal("0")}, PRICES, [], S
    )

    decision = decide(current, S, B, NOW, force=True)

    assert [t.symbol for t in decision.trades] == ["XRP/USDT"]
    assert any("BTC/USDT: below the 10 USD minimum trade" in s for s in decision.skipped)


def trade(symbol: str, amount: str) -> RebalanceTrade:
    return RebalanceTrade(symbol=symbol, side=Side.BUY, amount_usd=Decimal(amount))


def test_dca_splits_into_six_batches_four_hours_apart_remainder_first() -> None:
    batches = dca_batches([trade("BTC/USDT", "1000.05"), trade("XRP/USDT", "100")], S, NOW)

    assert [b.scheduled_at for b in batches] == [NOW + timedelta(hours=4 * i) for i in range(6)]
    btc = [b.trades[0].amount_usd for b in batches]
    xrp = [b.trades[1].amount_usd for b in batches]
    assert btc == [Decimal("166.70")] + [Decimal("166.67")] * 5 and sum(btc) == Decimal("1000.05")
    assert xrp == [Decimal("16.70")] + [Decimal("16.66")] * 5 and sum(xrp) == Decimal(100)


def test_dca_uses_fewer_batches_while_a_share_would_be_under_the_minimum() -> None:
    batches = dca_batches([trade("BTC/USDT", "600"), trade("XRP/USDT", "50")], S, NOW)
    assert len(batches) == 5 and all(b.trades[1].amount_usd == Decimal(10) for b in batches)

    small = dca_batches([trade("BTC/USDT", "490"), trade("XRP/USDT", "9.99")], S, NOW)  # under 500 in all
    assert len(small) == 1 and small[0].scheduled_at == NOW
    down_to_one = dca_batches([trade("BTC/USDT", "600"), trade("XRP/USDT", "15")], S, NOW)
    assert len(down_to_one) == 1 and down_to_one[0].trades[0].amount_usd == Decimal(600)


def test_targets_are_validated() -> None:
    from triplegain.errors import ConfigError

    with pytest.raises(ConfigError, match="sum to 100"):
        load_settings(portfolio={"target_pct": {"BTC": 50, "USDT": 40}})
    with pytest.raises(ConfigError, match="no USDT pair"):
        load_settings(portfolio={"target_pct": {"DOGE": 50, "USDT": 50}})


def test_no_rebalance_is_planned_unless_the_coordinator_runs() -> None:
    from triplegain.models.enums import CoordinatorState
    from triplegain.rebalance import plan_rebalance

    heavy_btc = allocation(
        {"USDT": Decimal(1000), "BTC": Decimal("0.1"), "XRP": Decimal(6000)}, PRICES, [], S
    )

    running = plan_rebalance(CoordinatorState.RUNNING, heavy_btc, S, B, NOW)
    paused = plan_rebalance(CoordinatorState.PAUSED, heavy_btc, S, B, NOW)

    assert running.action == "rebalance"
    assert paused.action == "none" and paused.reason == "coordinator is paused: no rebalance planned"


def test_a_batch_is_due_a_moment_early_but_not_before() -> None:
    from triplegain.rebalance import is_due

    assert is_due(NOW, NOW - timedelta(seconds=59))  # a scheduler starting the run a moment early
    assert not is_due(NOW, NOW - timedelta(minutes=2))


def test_a_batch_due_while_stopped_is_skipped_with_the_reason() -> None:
    from triplegain.models.enums import CoordinatorState
    from triplegain.rebalance import why_batch_skipped

    running, paused = CoordinatorState.RUNNING, CoordinatorState.PAUSED

    assert why_batch_skipped(NOW, running, running) is None
    assert (
        why_batch_skipped(NOW, paused, running)
        == "fell due at 2024-07-01 00:00 UTC while the coordinator was paused"
    )
    assert "halted" in (why_batch_skipped(NOW, running, CoordinatorState.HALTED) or "")
