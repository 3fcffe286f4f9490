from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.triplegain.factories import AT, indicators, regime
from triplegain.models.enums import Intent, Regime, Side, VerdictStatus
from triplegain.models.trading import Portfolio, Position, TradeProposal
from triplegain.risk import RiskContext, evaluate, initial_risk_state
from triplegain.risk.state import CircuitBreaker
from triplegain.settings import RiskSettings

S = RiskSettings()


def proposal(**overrides: object) -> TradeProposal:
    base: dict[str, object] = {
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "size_usd": Decimal(1000),
        "entry_price": Decimal(100),
        "stop_loss": Decimal(98),
        "take_profit": Decimal(104),
        "confidence": 0.8,
        "regime": "trending_bull",
    }
    return TradeProposal.model_validate(base | overrides)


def position(symbol: str = "BTC/USDT", size: str = "10", pid: str = "p1") -> Position:
    return Position(
        id=pid, symbol=symbol, size=Decimal(size), entry_price=Decimal(100), opened_at=AT, cycle_id="c"
    )


def context(
    balances: dict[str, Decimal] | None = None,
    positions: list[Position] | None = None,
    kind: Regime = Regime.TRENDING_BULL,
    **state: object,
) -> RiskContext:
    portfolio = Portfolio(
        balances=balances or {"USDT": Decimal(10_000)},
        prices={"BTC/USDT": Decimal(100), "XRP/USDT": Decimal(100)},
        positions=positions or [],
        as_of=AT,
    )
    risk = initial_risk_state(portfolio.equity, AT).model_copy(update=state)
    return RiskContext(portfolio, risk, regime(kind).parameters, indicators(), AT)


def codes(verdict: object) -> list[str]:
    return [r.code for r in verdict.rejections + verdict.modifications]  # type: ignore[attr-defined]


def test_sound_trade_is_approved_with_its_risk_figures() -> None:
    verdict = evaluate(proposal(), context(), S)

    assert verdict.status is VerdictStatus.APPROVED and verdict.approved
    assert verdict.risk_per_trade_pct == Decimal("0.2")  # 1000 at a 2% stop on 10000 equity
    assert verdict.exposure_pct == Decimal(10)


def test_halted_account_refuses_new_exposure_first() -> None:
    ctx = context(
        tripped={CircuitBreaker.DAILY_LOSS: "down 6%"}, cooldowns={"BTC/USDT": AT + timedelta(hours=1)}
    )

    verdict = evaluate(proposal(stop_loss=None), ctx, S)

    assert verdict.status is VerdictStatus.HALTED and codes(verdict) == ["TRADING_HALTED"]


def test_closing_is_allowed_even_when_halted() -> None:
    close = proposal(side=Side.SELL, intent=Intent.CLOSE, stop_loss=None, take_profit=None)

    verdict = evaluate(close, context(tripped={CircuitBreaker.MAX_DRAWDOWN: "x"}), S)

    assert verdict.status is VerdictStatus.APPROVED


def test_cooldown_is_per_symbol() -> None:
    ctx = context(cooldowns={"BTC/USDT": AT + timedelta(minutes=10)})

    assert codes(evaluate(proposal(), ctx, S)) == ["IN_COOLDOWN"]
    assert evaluate(proposal(symbol="XRP/USDT"), ctx, S).approved


def test_expired_cooldown_allows_trading() -> None:
    ctx = context(cooldowns={"BTC/USDT": AT - timedelta(minutes=1)})

    assert evaluate(proposal(), ctx, S).approved


def test_short_entry_is_refused_on_a_spot_account() -> None:
    short = proposal(side=Side.SELL, stop_loss=Decimal(102), take_profit=Decimal(96))

    assert codes(evaluate(short, context(), S)) == ["SHORT_NOT_ALLOWED"]


@pytest.mark.parametrize(
    ("stop", "target", "code"),
    [
        (None, Decimal(104), "STOP_LOSS_REQUIRED"),
        (Decimal("99.8"), Decimal(104), "STOP_TOO_TIGHT"),
        (Decimal(90), Decimal(130), "STOP_TOO_WIDE"),
        (Decimal(98), Decimal(102), "LOW_RR"),
    ],
)
def test_stop_loss_rules(stop: Decimal | None, target: Decimal, code: str) -> None:
    verdict = evaluate(proposal(stop_loss=stop, take_profit=target), context(), S)

    assert verdict.status is VerdictStatus.REJECTED and codes(verdict) == [code]


def test_confidence_threshold_depends_on_regime_losses_and_strictness() -> None:
    ok = evaluate(proposal(confidence=0.56), context(), S)
    after_losses = evaluate(proposal(confidence=0.6), context(consecutive_losses=3), S)
    strict_ranging = evaluate(proposal(confidence=0.62, regime="ranging"), context(kind=Regime.RANGING), S)

    assert ok.approved
    assert codes(after_losses) == ["CONFIDENCE_TOO_LOW"]  # 0.55 + 0.10
    assert codes(strict_ranging) == ["CONFIDENCE_TOO_LOW"]  # 0.60 + 0.05 strict


def test_size_is_capped_at_20_percent_of_equity_and_only_shrinks() -> None:
    verdict = evaluate(proposal(size_usd=Decimal(5000)), context(), S)

    assert verdict.status is VerdictStatus.MODIFIED and codes(verdict) == ["POSITION_SIZE"]
    assert verdict.modified_proposal is not None and verdict.modified_proposal.size_usd == Decimal(2000)
    assert verdict.final_proposal is verdict.modified_proposal


def test_risk_at_the_stop_is_capped_at_2_percent() -> None:
    wide = proposal(size_usd=Decimal(5000), stop_loss=Decimal(95), take_profit=Decimal(110))
    loose = S.model_copy(update={"max_position_pct": Decimal(50), "max_correlated_exposure_pct": Decimal(80)})

    verdict = evaluate(wide, context(), loose)

    assert codes(verdict) == ["RISK_PER_TRADE"]
    assert verdict.modified_proposal is not None and verdict.modified_proposal.size_usd == Decimal(4000)
    assert verdict.risk_per_trade_pct == Decimal(2)


def test_five_losses_halve_the_size_and_cap_leverage() -> None:
    verdict = evaluate(proposal(confidence=0.9, leverage=3), context(consecutive_losses=5), S)

    assert verdict.modified_proposal is not None
    assert verdict.modified_proposal.size_usd == Decimal(500)
    assert verdict.modified_proposal.leverage == 1
    assert codes(verdict) == ["LOSS_STREAK", "LEVERAGE"]


def test_volatility_spike_halves_the_size() -> None:
    ctx = replace(context(), indicators=indicators(atr=3.5, atr_mean=1.0))

    verdict = evaluate(proposal(), ctx, S)

    assert codes(verdict) == ["VOLATILITY_SPIKE"]
    assert verdict.modified_proposal is not None and verdict.modified_proposal.size_usd == Decimal(500)


def test_leverage_is_capped_by_regime() -> None:
    verdict = evaluate(
        proposal(leverage=4, regime="ranging", confidence=0.9), context(kind=Regime.RANGING), S
    )

    assert verdict.modified_proposal is not None and verdict.modified_proposal.leverage == 2


def test_position_count_limits() -> None:
    two = [position(pid="a", size="1"), position(pid="b", size="1")]

    assert codes(evaluate(proposal(), context(positions=two), S)) == ["POSITION_LIMIT"]


def test_total_exposure_limit() -> None:
    held = [position("XRP/USDT", "78", "x")]  # 7800 of 10000 equity, correlated but under the threshold
    settings = S.model_copy(update={"correlations": {}})

    verdict = evaluate(proposal(size_usd=Decimal(1000)), context(positions=held), settings)

    assert codes(verdict) == ["EXPOSURE_LIMIT"]


def test_correlated_exposure_limit() -> None:
    held = [position("XRP/USDT", "35", "x")]  # 3500 * 0.75 = 2625, plus 1500 new > 40%

    verdict = evaluate(proposal(size_usd=Decimal(1500)), context(positions=held), S)

    assert codes(verdict) == ["CORRELATED_EXPOSURE"]


def test_insufficient_margin() -> None:
    ctx = context(balances={"USDT": Decimal(500), "BTC": Decimal(95)})

    assert codes(evaluate(proposal(), ctx, S)) == ["INSUFFICIENT_MARGIN"]


def test_drawdown_beyond_the_limit_halts_even_before_the_breaker_is_marked() -> None:
    ctx = context(peak_equity=Decimal(13_000))

    verdict = evaluate(proposal(), ctx, S)

    assert verdict.status is VerdictStatus.HALTED and codes(verdict) == ["MAX_DRAWDOWN"]


def test_proposal_with_inverted_levels_is_invalid() -> None:
    with pytest.raises(ValueError, match="levels inverted"):
        proposal(stop_loss=Decimal(101))


def test_the_drawdown_taper_shrinks_an_entry_and_leaves_the_hodl_bags_out_of_the_equity() -> None:
    s = RiskSettings()  # limit 20%, shrinking from 10%
    base = context(balances={"USDT": Decimal(8_000), "BTC": Decimal(20)}, peak_equity=Decimal(9_000))

    counted = evaluate(proposal(size_usd=Decimal(500)), base, s)  # 10,000 with the bag: above the peak
    aside = evaluate(proposal(size_usd=Decimal(500)), replace(base, hodl_usd=Decimal(2_000)), s)

    assert "DRAWDOWN_TAPER" not in codes(counted)
    assert "DRAWDOWN_TAPER" in codes(aside)  # 8,000 of a 9,000 peak: 11.1% down, x0.89
    final = aside.final_proposal
    assert final is not None and final.size_usd == pytest.approx(
        Decimal(500) * Decimal(8) / 9, rel=Decimal("0.001")
    )
