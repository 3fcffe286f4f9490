"""The deterministic risk engine and the risk state it keeps across runs."""

from triplegain.risk.engine import RiskContext, evaluate
from triplegain.risk.state import (
    CircuitBreaker,
    RiskState,
    initial_risk_state,
    mark_equity,
    record_trade_result,
    reset_drawdown_breaker,
)

__all__ = [
    "CircuitBreaker",
    "RiskContext",
    "RiskState",
    "evaluate",
    "initial_risk_state",
    "mark_equity",
    "record_trade_result",
    "reset_drawdown_breaker",
]
