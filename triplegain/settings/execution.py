"""Settings of order execution: paper (the default) or live on an exchange through ccxt (issue 16)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from triplegain.settings.section import SECTION, Seconds


class ExecutionSettings(BaseModel):
    """Where orders go. Orders are market orders, as on paper (the decisions were measured on those fills);
    the position limits (2 a symbol, 5 in all) are the risk engine's (`risk.max_positions_per_symbol`,
    `risk.max_open_positions`), for paper and live alike. Live needs all of `mode: live`,
    TRIPLEGAIN_TRADING_MODE=live, TRIPLEGAIN_CONFIRM_LIVE_TRADING=I_UNDERSTAND_THE_RISKS and exchange keys,
    among others (`triplegain.live_gate`)."""

    model_config = SECTION

    mode: Literal["paper", "live"] = Field("paper", description="paper (simulated fills) or live")
    exchange: str = Field("kraken", description="The ccxt exchange id live orders go to")
    api_url: str | None = Field(
        None, description="The exchange's REST base URL instead of ccxt's (a sandbox; a local fake in tests)"
    )
    calls_per_minute: int = Field(60, ge=1, le=6_000, description="Exchange calls in any minute")
    orders_per_minute: int = Field(30, ge=1, le=6_000, description="Orders placed in any minute")
    timeout_seconds: Seconds = Field(10.0, description="One exchange call's timeout")
    rate_limit_ms: int | None = Field(
        None,
        ge=1,
        le=60_000,
        description="ccxt's limiter: milliseconds per unit of call cost (None keeps the exchange's own, "
        "Kraken 1000; a higher account tier may allow less)",
    )
    close_unprotected: bool = Field(
        True,
        description="Close a position at once when its stop-loss or take-profit cannot be placed on the "
        "exchange (URGENT either way); false keeps it open, unprotected, on the operator's word",
    )
    lookup_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="Lookups of an order whose reply was lost, with backoff, before the run stops",
    )
    account_wait_seconds: Seconds = Field(
        900.0,
        description="How long a live run waits for another one (a cycle, a market watch, a DCA batch, a "
        "reconciliation) to finish with the account before it gives up, doing nothing",
    )
