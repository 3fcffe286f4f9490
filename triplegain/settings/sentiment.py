"""Settings of the sentiment agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from triplegain.settings.section import SECTION, Seconds


def _default_keywords() -> dict[str, list[str]]:
    return {"BTC/USDT": ["bitcoin", "btc"], "XRP/USDT": ["xrp", "ripple"]}


class SentimentSettings(BaseModel):
    """The sentiment agent (reference spec 4.3): news, bands, weights, validity."""

    model_config = SECTION

    news_dir: Path | None = Field(
        None, description="Headlines CSV directory; None means the bundled May 2022"
    )
    lookback_hours: int = Field(24, ge=1, description="Headlines from this long before the as-of time")
    max_headlines: int = Field(30, ge=1, description="Headlines per prompt, newest first")
    min_symbol_headlines: int = Field(5, ge=0, description="Fewer about the asset: add general headlines")
    keywords: dict[str, list[str]] = Field(default_factory=_default_keywords, description="Symbol -> words")
    validity_minutes: int = Field(60, ge=1, description="How long a report stays usable by trading cycles")
    timeout_seconds: Seconds = Field(30, description="All models together")
    min_confidence: float = Field(0.3, ge=0, le=1, description="Floor of the aggregated confidence")
    weights: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict, description="Provider -> weight (default 1.0)"
    )
    very_bullish_from: float = Field(0.6, ge=-1, le=1)
    bullish_from: float = Field(0.2, ge=-1, le=1)
    neutral_from: float = Field(-0.2, ge=-1, le=1)
    bearish_from: float = Field(-0.6, ge=-1, le=1)
    max_events: int = Field(5, ge=0)
    max_narratives: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _bands_descend(self) -> SentimentSettings:
        bands = [self.very_bullish_from, self.bullish_from, self.neutral_from, self.bearish_from]
        if bands != sorted(bands, reverse=True):
            raise ValueError(f"score bands must descend: {bands}")
        return self
