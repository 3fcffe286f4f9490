"""What every settings section shares: frozen, unknown keys refused, and the bounded kinds of limit.

Every limit is bounded at load (reported as key, value and rule): a percentage lies in 0..100, leverage in
1..`MAX_LEVERAGE` (what the account type allows: Kraken's margin accounts, reference spec 4.7, lend at most
5x; a spot account trades at 1x whatever the setting), money and fees are never negative, durations and
counts have a ceiling that no sane configuration reaches.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import ConfigDict, Field

SECTION = ConfigDict(extra="forbid", frozen=True)
MAX_LEVERAGE = 5
MINUTES_PER_WEEK = 7 * 24 * 60

Percent = Annotated[Decimal, Field(ge=0, le=100)]
PositivePercent = Annotated[Decimal, Field(gt=0, le=100)]
Leverage = Annotated[int, Field(ge=1, le=MAX_LEVERAGE)]
Usd = Annotated[Decimal, Field(ge=0, le=Decimal(10) ** 12)]
Share = Annotated[float, Field(ge=0, le=1)]
Minutes = Annotated[int, Field(ge=0, le=MINUTES_PER_WEEK)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
Count = Annotated[int, Field(ge=0, le=10_000)]
Period = Annotated[int, Field(ge=1, le=5_000)]
