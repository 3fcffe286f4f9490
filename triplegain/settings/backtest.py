"""Settings of backtests: what the simulated operator does after the max-drawdown breaker halts trading."""

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
