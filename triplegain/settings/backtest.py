"""Settings of backtests: what the simulated operator does after the max-drawdown breaker halts trading, and
how many analyses a process keeps for the next backtest on the same data."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from triplegain.settings.section import SECTION

HOURS_PER_YEAR = 24 * 365


class BacktestSettings(BaseModel):
    """How a backtest continues after a halt (live, resuming is a human's decision)."""

    model_config = SECTION

    resume_after_halt: str = Field(
        "never",
        description="'never' (the account stays halted, as live until someone resets it), or a number of "
        "hours (e.g. '168h' or 168) after which the breaker is reset with the peak restarted at the "
        "equity then, and the coordinator resumed",
    )

    memo_hours: int = Field(
        20_000,
        ge=1,
        description="Symbol-hours whose market reads (snapshot and technical report, about 11 KB each) a "
        "process (each optimize worker) keeps per data source for its next backtests, and twice as many "
        "analyses (about 7 KB each), least recently used dropped first (`triplegain.analysis_memo`): a "
        "year of 2 symbols is 17,520",
    )

    @field_validator("resume_after_halt", mode="before")
    @classmethod
    def _policy(cls, value: object) -> str:
        text = str(value).strip().lower()
        if text == "never":
            return text
        hours = text.removesuffix("h")
        if not hours.isdigit() or not 1 <= int(hours) <= HOURS_PER_YEAR:
            raise ValueError(f"'never' or a number of hours from 1 to {HOURS_PER_YEAR} (like '168h')")
        return f"{int(hours)}h"

    @property
    def resume_hours(self) -> int | None:
        """The hours after a halt the backtest resumes; None for never."""
        return None if self.resume_after_halt == "never" else int(self.resume_after_halt[:-1])
