"""What every settings section shares: frozen, and unknown keys refused."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ConfigDict

SECTION = ConfigDict(extra="forbid", frozen=True)
Percent = Decimal
