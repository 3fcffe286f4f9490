"""The deterministic risk engine: veto power over every trade (reference spec 4.6).

Rules run in the reference's order and the first rejection stops evaluation. Closing a position always
passes: it only ever reduces risk. A modification only ever makes a trade smaller (size or leverage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from triplegain.models.analysis import Indicators, RegimeParameters
from triplegain.models.enums import Intent, Side, VerdictStatus
from triplegain.models.trading import QUOTE, Portfolio, RiskReason, RiskVerdict, TradeProposal
from triplegain.risk.state import RiskState, drawdown_scale
from triplegain.settings import RiskSettings

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class RiskContext:
    """What the engine needs besides the proposal: the account, its risk memory and the market's mood."""

    portfolio: Portfolio
    state: RiskState
    regime: RegimeParameters
    indicators: Indicators
    now: datetime
    fee_pct: Decimal = Decimal(0)
    max_slippage_pct: Decimal = Decimal(0)
    hodl_usd: Decimal = Decimal(0)  # the hodl bags' value: left out of the equity, as the breakers do

    def worst_fill_divisor(self, share: Decimal) -> Decimal:
        """What a position's order-price notional is divided by so that its worst-case fill keeps it within
        `share` of equity: measured at the fill price against the equity before the trade, and at the
        market against the equity the fee and slippage leave."""
        fee, slip = self.fee_pct / HUNDRED, self.max_slippage_pct / HUNDRED
        return max(1 + slip, 1 + share * (fee * (1 + slip) + slip))


@dataclass(frozen=True)
class _Refusal:
    status: VerdictStatus
    reason: RiskReason


def _refuse(code: str, message: str, status: VerdictStatus = VerdictStatus.REJECTED) -> _Refusal:
    return _Refusal(status, RiskReason(code=code, message=message))


@dataclass
class _Review:
    """A proposal being reviewed: its current size and leverage, and what was changed and why."""

    proposal: TradeProposal
    size: Decimal
    leverage: int
    modifications: list[RiskReason] = field(default_factory=list)
    warnings: list[RiskReason] = field(default_factory=list)

    def reduce_size(self, size: Decimal, code: str, message: str) -> None:
        if size < self.size:
            self.size = size
            self.modifications.append(RiskReason(code=code, message=message))


def evaluate(proposal: TradeProposal, ctx: RiskContext, s: RiskSettings) -> RiskVerdict:
    """Approve, shrink, reject or halt one proposal."""
    if proposal.intent is Intent.CLOSE:
        return RiskVerdict(status=VerdictStatus.APPROVED, proposal=proposal)
    if proposal.intent is Intent.REBALANCE:
        return evaluate_rebalance(proposal, ctx.state)
    review = _Review(proposal, proposal.size_usd, proposal.leverage)
    equity = ctx.portfolio.equity - ctx.hodl_usd
    for rule in _RULES:
        refusal = rule(review, ctx, s, equity)
        if refusal is not None:
            return RiskVerdict(
                status=refusal.status,
                proposal=proposal,
                rejections=[refusal.reason],
                warnings=review.warnings,
            )
    return _verdict(review, ctx, equity)


def evaluate_rebalance(proposal: TradeProposal, state: RiskState) -> RiskVerdict:
    """The rebalance path (spot, no position): no stop-loss or R:R needed, leverage 1 only; a tripped breaker
    stops rebalance buys (new exposure) but never sells."""
    refusal = None
    if proposal.leverage != 1:
        refusal = _refuse("REBALANCE_LEVERAGE", "rebalance trades are spot trades at leverage 1")
    elif proposal.side is Side.BUY and state.halted:
        reasons = "; ".join(f"{k}: {v}" for k, v in state.tripped.items())
        refusal = _refuse("TRADING_HALTED", f"circuit breaker tripped ({reasons})", VerdictStatus.HALTED)
    if refusal is not None:
        return RiskVerdict(status=refusal.status, proposal=proposal, rejections=[refusal.reason])
    return RiskVerdict(status=VerdictStatus.APPROVED, proposal=proposal)


def _verdict(review: _Review, ctx: RiskContext, equity: Decimal) -> RiskVerdict:
    p = review.proposal
    modified = None
    if review.modifications:
        modified = p.model_copy(update={"size_usd": review.size, "leverage": review.leverage})
        if modified.size_usd > p.size_usd or modified.leverage > p.leverage:
            raise AssertionError("a risk modification may only make a trade smaller")
    stop_pct = _stop_pct(p)
    exposure = ctx.portfolio.exposure() + review.size * review.leverage
    return RiskVerdict(
        status=VerdictStatus.MODIFIED if modified else VerdictStatus.APPROVED,
        proposal=p,
        modified_proposal=modified,
        warnings=review.warnings,
        modifications=review.modifications,
        risk_per_trade_pct=(review.size * stop_pct / equity).quantize(Decimal("0.0001"))
        if equity
        else Decimal(0),
        exposure_pct=(exposure / equity * HUNDRED).quantize(Decimal("0.01")) if equity else Decimal(0),
    )


def _check_halted(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    if ctx.state.halted:
        reasons = "; ".join(f"{k}: {v}" for k, v in ctx.state.tripped.items())
        return _refuse("TRADING_HALTED", f"circuit breaker tripped ({reasons})", VerdictStatus.HALTED)
    return None


def _check_cooldown(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    symbol = review.proposal.symbol
    if ctx.state.in_execution_cooldown(ctx.now):
        until = ctx.state.execution_cooldown_until.isoformat() if ctx.state.execution_cooldown_until else ""
        return _refuse("IN_COOLDOWN", f"repeated order errors: no new entry until {until}")
    if ctx.state.in_cooldown(symbol, ctx.now):
        until = ctx.state.cooldowns[symbol].isoformat()
        return _refuse("IN_COOLDOWN", f"{symbol} is in cooldown until {until}")
    return None


def _check_short(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    if review.proposal.side is Side.SELL and not s.allow_short:
        return _refuse(
            "SHORT_NOT_ALLOWED",
            "spot account: selling without an open long is refused",
        )
    return None


def _check_stop_loss(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    p = review.proposal
    if p.stop_loss is None:
        if s.stop_loss_required:
            return _refuse("STOP_LOSS_REQUIRED", "every entry needs a stop-loss")
        return None
    pct = _stop_pct(p)
    if pct < s.min_stop_pct:
        return _refuse("STOP_TOO_TIGHT", f"stop {pct:.2f}% away, minimum {s.min_stop_pct}%")
    if pct > s.max_stop_pct:
        return _refuse("STOP_TOO_WIDE", f"stop {pct:.2f}% away, maximum {s.max_stop_pct}%")
    if p.take_profit is not None:
        ratio = abs(p.take_profit - p.entry_price) / abs(p.entry_price - p.stop_loss)
        if ratio < s.min_risk_reward:
            return _refuse("LOW_RR", f"reward/risk {ratio:.2f}, minimum {s.min_risk_reward}")
    return None


def _check_confidence(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    p = review.proposal
    required = s.regime_min_confidence.get(p.regime, s.default_min_confidence)
    step = s.loss_step(ctx.state.consecutive_losses)
    required += (step.confidence_add if step else 0.0) + s.strictness_adjustment.get(
        ctx.regime.entry_strictness, 0.0
    )
    if p.confidence < required:
        return _refuse(
            "CONFIDENCE_TOO_LOW",
            f"confidence {p.confidence:.2f} below {required:.2f} required in {p.regime} "
            f"({ctx.regime.entry_strictness}, {ctx.state.consecutive_losses} losses in a row)",
        )
    return None


def _check_position_count(
    review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal
) -> _Refusal | None:
    open_here = len(ctx.portfolio.open_positions(review.proposal.symbol))
    if open_here >= s.max_positions_per_symbol:
        return _refuse("POSITION_LIMIT", f"{open_here} positions already open on the symbol")
    if len(ctx.portfolio.positions) >= s.max_open_positions:
        return _refuse("POSITION_LIMIT", f"{s.max_open_positions} positions already open")
    return None


def _check_size(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    share = s.max_position_pct / HUNDRED
    cap = equity * share / ctx.worst_fill_divisor(share)
    review.reduce_size(
        cap,
        "POSITION_SIZE",
        f"capped at {s.max_position_pct}% of equity ({cap:.2f}, worst-case fill included)",
    )
    stop_pct = _stop_pct(review.proposal)
    if stop_pct > 0:
        risk_cap = equity * s.max_risk_per_trade_pct / stop_pct
        review.reduce_size(
            risk_cap, "RISK_PER_TRADE", f"loss at the stop capped at {s.max_risk_per_trade_pct}% of equity"
        )
    step = s.loss_step(ctx.state.consecutive_losses)
    if step and step.size_reduction_pct:
        factor = 1 - step.size_reduction_pct / HUNDRED
        review.reduce_size(
            review.size * factor, "LOSS_STREAK", f"{ctx.state.consecutive_losses} losses in a row"
        )
    return None


def _check_drawdown_taper(
    review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal
) -> _Refusal | None:
    """New positions shrink with the allocation's ceiling as the drawdown deepens (`triplegain.exposure`)."""
    drawdown = ctx.state.drawdown_pct(equity)
    scale = drawdown_scale(drawdown, False, s)
    if scale < 1:
        review.reduce_size(
            review.size * scale,
            "DRAWDOWN_TAPER",
            f"equity {drawdown:.2f}% below its peak: size x{scale:.2f} (from {s.derisk_start_pct}% to "
            f"{s.max_drawdown_pct}%, linearly to nothing)",
        )
    return None


def _check_volatility(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    atr, mean = ctx.indicators.atr, ctx.indicators.atr_mean
    if atr is not None and mean and atr > s.volatility_spike_atr_ratio * mean:
        factor = 1 - s.volatility_spike_size_reduction_pct / HUNDRED
        review.reduce_size(review.size * factor, "VOLATILITY_SPIKE", f"ATR {atr / mean:.1f}x its mean")
    return None


def _check_leverage(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    drawdown = ctx.state.drawdown_pct(equity)
    limits = [s.max_leverage, s.regime_max_leverage.get(review.proposal.regime, s.default_regime_leverage)]
    limits += [lev for floor, lev in s.drawdown_leverage_limits.items() if drawdown >= floor]
    step = s.loss_step(ctx.state.consecutive_losses)
    limits += [step.max_leverage] if step else []
    allowed = min(limits)
    if review.leverage > allowed:
        review.leverage = allowed
        review.modifications.append(RiskReason(code="LEVERAGE", message=f"leverage capped at {allowed}x"))
    return None


def _check_exposure(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    if equity <= 0:
        return _refuse("NO_EQUITY", "account equity is zero")
    total = (ctx.portfolio.exposure() + review.size * review.leverage) / equity * HUNDRED
    if total > s.max_total_exposure_pct:
        return _refuse(
            "EXPOSURE_LIMIT",
            f"exposure would be {total:.1f}%, max {s.max_total_exposure_pct}%",
        )
    return None


def _check_correlation(
    review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal
) -> _Refusal | None:
    symbol = review.proposal.symbol
    correlated = review.size * review.leverage + ctx.portfolio.exposure(symbol)
    for other in {p.symbol for p in ctx.portfolio.positions} - {symbol}:
        corr = _correlation(symbol, other, s)
        if corr > s.correlation_threshold:
            correlated += ctx.portfolio.exposure(other) * Decimal(repr(corr))
    pct = correlated / equity * HUNDRED
    if pct > s.max_correlated_exposure_pct:
        return _refuse(
            "CORRELATED_EXPOSURE",
            f"correlated exposure would be {pct:.1f}%, max {s.max_correlated_exposure_pct}%",
        )
    return None


def _check_margin(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    available = ctx.portfolio.balances.get(QUOTE, Decimal(0))
    needed = review.size / review.leverage
    if needed > available:
        return _refuse(
            "INSUFFICIENT_MARGIN",
            f"needs {needed:.2f} {QUOTE}, {available:.2f} available",
        )
    return None


def _check_drawdown(review: _Review, ctx: RiskContext, s: RiskSettings, equity: Decimal) -> _Refusal | None:
    drawdown = ctx.state.drawdown_pct(equity)
    if drawdown >= s.max_drawdown_pct:
        return _refuse(
            "MAX_DRAWDOWN",
            f"equity {drawdown:.2f}% below its peak (max {s.max_drawdown_pct}%)",
            VerdictStatus.HALTED,
        )
    return None


_RULES = (
    _check_halted,
    _check_cooldown,
    _check_short,
    _check_stop_loss,
    _check_confidence,
    _check_position_count,
    _check_size,
    _check_drawdown_taper,
    _check_volatility,
    _check_leverage,
    _check_exposure,
    _check_correlation,
    _check_margin,
    _check_drawdown,
)


def _stop_pct(p: TradeProposal) -> Decimal:
    return Decimal(0) if p.stop_loss is None else abs(p.entry_price - p.stop_loss) / p.entry_price * HUNDRED


def _correlation(a: str, b: str, s: RiskSettings) -> float:
    return s.correlations.get(f"{a}|{b}", s.correlations.get(f"{b}|{a}", 0.0))
