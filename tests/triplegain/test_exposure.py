"""Exposure ceilings: the volatility and drawdown scales, and what the coordinator sells and buys."""

from decimal import Decimal

import numpy as np
import pytest

from tests.triplegain.factories import AT
from tests.triplegain.test_breaker_actions import marks
from tests.triplegain.test_coordinator import account, analysis, signal
from triplegain.coordinator import coordinate
from triplegain.cycle_types import CoordinationInput
from triplegain.exposure import ceilings, realised_volatility_pct, volatility_scale
from triplegain.models.enums import Action, CoordinatorState, Side
from triplegain.rebalance import RebalanceTrade
from triplegain.risk.state import CircuitBreaker, drawdown_scale
from triplegain.settings import PortfolioSettings, RiskSettings, load_settings

RISK = RiskSettings()  # limit 20%, shrinking from 10%
NO_VOL = PortfolioSettings(target_volatility_pct=None)


@pytest.mark.parametrize(
    ("drawdown", "tripped", "scale"),
    [
        ("0", False, "1"),
        ("10", False, "1"),
        ("15", False, "0.5"),
        ("19", False, "0.1"),
        ("20", False, "0"),
        ("3", True, "0"),
    ],
)
def test_the_drawdown_scale_by_hand(drawdown: str, tripped: bool, scale: str) -> None:
    assert drawdown_scale(Decimal(drawdown), tripped, RISK) == Decimal(scale)


def test_a_set_derisk_start_moves_the_taper() -> None:
    s = RiskSettings(max_drawdown_pct=Decimal(8), derisk_from_pct=Decimal(6))

    assert drawdown_scale(Decimal(7), False, s) == Decimal("0.5")
    assert RiskSettings(max_drawdown_pct=Decimal(8)).derisk_start_pct == 4


def test_derisk_start_must_be_below_the_limit() -> None:
    with pytest.raises(ValueError, match="derisk_from_pct must be below max_drawdown_pct"):
        RiskSettings(max_drawdown_pct=Decimal(8), derisk_from_pct=Decimal(9))


def test_realised_volatility_annualises_hourly_log_returns() -> None:
    closes = 100 * np.exp(np.cumsum(np.tile([0.01, -0.01], 400)))

    vol = realised_volatility_pct(closes, 720)

    assert vol == pytest.approx(0.01 * np.sqrt(24 * 365) * 100, rel=1e-3)
    assert realised_volatility_pct(closes[:100], 720) is None  # under half the window: unknown


def test_a_calm_asset_keeps_its_target_and_a_wild_one_is_cut() -> None:
    s = PortfolioSettings()  # 50% a year

    assert volatility_scale(40.0, s) == 1
    assert volatility_scale(100.0, s) == Decimal("0.5")
    assert volatility_scale(None, s) == 1 and volatility_scale(100.0, NO_VOL) == 1


def test_ceilings_combine_both_scales_and_put_the_rest_in_usdt() -> None:
    wild = 100 * np.exp(np.cumsum(np.tile([0.0107, -0.0107], 400)))  # about 100% a year
    risk = marks("10000", "10000", "10000")

    limits = ceilings({"BTC": wild}, risk, Decimal(8_500), PortfolioSettings(), RISK)  # 15% down

    assert limits.drawdown_scale == Decimal("0.5")
    assert limits.pct["BTC"] == pytest.approx(
        Decimal("33.33") * Decimal("0.5") * Decimal("0.5"), rel=Decimal("0.02")
    )
    assert limits.pct["XRP"] == Decimal("33.33") * Decimal("0.5")  # no closes: volatility unknown
    targets = limits.targets(PortfolioSettings())
    assert sum(targets.values()) == 100 and targets["USDT"] > 50


def allocated(**overrides: object):  # type: ignore[no-untyped-def]
    """3,333 USD of BTC at 100, 6,667 USDT, no position: the allocation at its BTC target."""
    return account(balances={"USDT": Decimal(6_667), "BTC": Decimal("33.33")}, **overrides)


def run(acct: object, settings: object, rebalance: list[RebalanceTrade] | None = None):  # type: ignore[no-untyped-def]
    btc = analysis(signal(Action.HOLD))
    return coordinate(CoordinationInput("c1", AT, acct, [btc], rebalance=rebalance or []), settings)  # type: ignore[arg-type]


def test_within_the_first_half_of_the_limit_nothing_is_sold() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})

    result = run(allocated(risk=marks("10000", "10000", "10500")), settings)  # 4.8% down

    assert result.portfolio.balances["BTC"] == Decimal("33.33")


def test_deeper_in_the_drawdown_the_excess_is_sold_at_once() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})

    result = run(allocated(risk=marks("10000", "10000", "11765")), settings)  # 15% down: ceiling halves

    btc_usd = result.portfolio.balances["BTC"] * 100
    assert btc_usd == pytest.approx(Decimal("1666.6"), abs=Decimal(20))  # half its target of ~3,333
    assert any("selling" in n and "BTC ceiling" in n for n in result.notes)


def test_at_the_breaker_the_allocation_is_sold_even_while_halted() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})
    risk = marks("10000", "10000", "13000", tripped={CircuitBreaker.MAX_DRAWDOWN: "x"})

    result = run(allocated(risk=risk, coordinator=CoordinatorState.HALTED), settings)

    assert result.portfolio.balances["BTC"] == 0 and result.coordinator is CoordinatorState.HALTED


def test_a_dca_buy_stops_at_the_ceiling() -> None:
    settings = load_settings(portfolio={"target_volatility_pct": None})
    buy = RebalanceTrade(symbol="BTC/USDT", side=Side.BUY, amount_usd=Decimal(2_000))
    start = account(balances={"USDT": Decimal(10_000)}, risk=marks("10000", "10000", "11765"))  # 15% down

    result = run(start, settings, [buy])

    assert result.portfolio.balances["BTC"] * 100 <= Decimal("1670")  # ceiling 16.7% of 10,000, not 2,000
    assert any("rebalance buy of BTC/USDT cut from 2000" in n for n in result.notes), result.notes
