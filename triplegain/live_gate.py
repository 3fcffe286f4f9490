"""The gate in front of live trading (reference spec 4.7: PAPER by default, a triple confirmation for LIVE).

An account trades live only when all of these hold, each checked here and each named when missing:

1. the settings say so: `execution.mode: live`;
2. the environment says so: TRIPLEGAIN_TRADING_MODE=live;
3. the operator confirmed it: TRIPLEGAIN_CONFIRM_LIVE_TRADING=I_UNDERSTAND_THE_RISKS;
4. exchange keys exist (an `ExchangeKeys` block, or TRIPLEGAIN_EXCHANGE_API_KEY and _SECRET);
5. the market data comes from the exchange (`market.source: ccxt`), never a replay;
6. the database holds no paper account (a live account keeps its own database, and a paper run refuses a
   database that holds a live one).

Settings and environment disagreeing is refused as well: a stray TRIPLEGAIN_TRADING_MODE=live under paper
settings is a mistake, not a request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.settings import Settings

TRADING_MODE_ENV = "TRIPLEGAIN_TRADING_MODE"
CONFIRM_ENV = "TRIPLEGAIN_CONFIRM_LIVE_TRADING"
CONFIRMATION = "I_UNDERSTAND_THE_RISKS"
KEY_ENV, SECRET_ENV = "TRIPLEGAIN_EXCHANGE_API_KEY", "TRIPLEGAIN_EXCHANGE_SECRET"
Mode = Literal["paper", "live"]


class LiveTradingRefused(ConfigError):
    """Live trading was asked for and at least one of its conditions does not hold (each is named)."""


@dataclass(frozen=True)
class ExchangeKeys:
    """An exchange API key and secret, and where they came from (a block's name, or 'environment')."""

    api_key: SecretStr
    secret: SecretStr
    source: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ExchangeKeys | None:
        """The keys in TRIPLEGAIN_EXCHANGE_API_KEY and TRIPLEGAIN_EXCHANGE_SECRET, if both are set."""
        key, secret = environ.get(KEY_ENV, "").strip(), environ.get(SECRET_ENV, "").strip()
        if not key or not secret:
            return None
        return cls(SecretStr(key), SecretStr(secret), "environment")


@dataclass(frozen=True)
class LiveAuthorization:
    """Proof that every condition of live trading held when it was checked."""

    exchange: str
    keys: ExchangeKeys


def trading_mode(settings: Settings, environ: Mapping[str, str]) -> Mode:
    """'paper' or 'live' from the settings and the environment, which must agree; only the mode (the keys
    and the database are `authorize_live`'s)."""
    asked = environ.get(TRADING_MODE_ENV, "paper").strip().lower() or "paper"
    if asked not in ("paper", "live"):
        raise LiveTradingRefused([ConfigProblem(TRADING_MODE_ENV, asked, "paper or live")])
    if asked != settings.execution.mode:
        raise LiveTradingRefused(
            [
                ConfigProblem(
                    TRADING_MODE_ENV,
                    asked,
                    f"the same as execution.mode ({settings.execution.mode}): live needs both, and a "
                    "disagreement is a mistake rather than a request",
                )
            ]
        )
    return settings.execution.mode


def authorize_live(
    settings: Settings,
    environ: Mapping[str, str],
    keys: ExchangeKeys | None,
    modes_in_database: Collection[str],
) -> LiveAuthorization:
    """Every condition of live trading, each missing one named; LiveTradingRefused otherwise."""
    problems = []
    if settings.execution.mode != "live":
        problems.append(ConfigProblem("execution.mode", settings.execution.mode, "live"))
    if environ.get(TRADING_MODE_ENV, "").strip().lower() != "live":
        problems.append(ConfigProblem(TRADING_MODE_ENV, environ.get(TRADING_MODE_ENV), "live"))
    if environ.get(CONFIRM_ENV) != CONFIRMATION:
        shown = "<set, but not the confirmation>" if environ.get(CONFIRM_ENV) else None
        problems.append(ConfigProblem(CONFIRM_ENV, shown, f"exactly {CONFIRMATION}"))
    if keys is None:
        problems.append(
            ConfigProblem(
                "exchange keys",
                None,
                f"an ExchangeKeys block (triplegain blocks register), or {KEY_ENV} and {SECRET_ENV}",
            )
        )
    if settings.market.source != "ccxt":
        problems.append(
            ConfigProblem(
                "market.source", settings.market.source, "ccxt on a live account: real orders on real prices"
            )
        )
    mismatch = database_mode_problem("live", modes_in_database)
    if mismatch is not None:
        problems.append(mismatch)
    if problems:
        raise LiveTradingRefused(problems)
    assert keys is not None
    return LiveAuthorization(settings.execution.exchange, keys)


def check_database_mode(mode: Mode, modes_in_database: Collection[str]) -> None:
    """Refuse a database that holds an account of the other mode (ConfigError)."""
    problem = database_mode_problem(mode, modes_in_database)
    if problem is not None:
        raise LiveTradingRefused([problem])


def database_mode_problem(mode: Mode, modes_in_database: Collection[str]) -> ConfigProblem | None:
    """What is wrong with running `mode` on a database that holds accounts of `modes_in_database`."""
    other = {m for m in modes_in_database if m != mode}
    if not other:
        return None
    return ConfigProblem(
        "database_url",
        f"holds a {', '.join(sorted(other))} account",
        f"a database of its own for a {mode} account: paper and live never share one (promote by "
        "pointing the live run at a new database)",
    )
