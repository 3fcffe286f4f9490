"""The gate in front of live trading: every condition, each named when missing; paper stays the default."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from triplegain.errors import ConfigError
from triplegain.live_gate import (
    CONFIRMATION,
    ExchangeKeys,
    LiveTradingRefused,
    authorize_live,
    check_database_mode,
    trading_mode,
)
from triplegain.settings import load_settings

LIVE_ENV = {"TRIPLEGAIN_TRADING_MODE": "live", "TRIPLEGAIN_CONFIRM_LIVE_TRADING": CONFIRMATION}
KEYS = ExchangeKeys(SecretStr("key"), SecretStr("secret"), "block:kraken")


def live_settings():  # type: ignore[no-untyped-def]
    return load_settings(execution={"mode": "live"}, market={"source": "ccxt"})


def test_paper_is_the_default_and_needs_nothing() -> None:
    assert trading_mode(load_settings(), {}) == "paper"


def test_live_with_every_condition_is_authorized() -> None:
    granted = authorize_live(live_settings(), LIVE_ENV, KEYS, modes_in_database=set())

    assert granted.exchange == "kraken" and granted.keys.source == "block:kraken"
    assert trading_mode(live_settings(), LIVE_ENV) == "live"


def test_every_missing_condition_is_named_at_once() -> None:
    with pytest.raises(LiveTradingRefused) as refused:
        authorize_live(load_settings(), {"TRIPLEGAIN_CONFIRM_LIVE_TRADING": "yes"}, None, {"paper"})

    keys = [p.key for p in refused.value.problems]
    assert keys == [
        "execution.mode",
        "TRIPLEGAIN_TRADING_MODE",
        "TRIPLEGAIN_CONFIRM_LIVE_TRADING",
        "exchange keys",
        "market.source",
        "database_url",
    ]
    assert isinstance(refused.value, ConfigError)
    assert "yes" not in str(refused.value)  # a wrong confirmation is not echoed back


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"TRIPLEGAIN_CONFIRM_LIVE_TRADING": CONFIRMATION}, "TRIPLEGAIN_TRADING_MODE"),
        ({"TRIPLEGAIN_TRADING_MODE": "live"}, "TRIPLEGAIN_CONFIRM_LIVE_TRADING"),
        ({**LIVE_ENV, "TRIPLEGAIN_CONFIRM_LIVE_TRADING": "i_understand_the_risks"}, "TRIPLEGAIN_CONFIRM"),
    ],
)
def test_one_missing_confirmation_refuses_live(env: dict[str, str], missing: str) -> None:
    with pytest.raises(LiveTradingRefused, match=missing):
        authorize_live(live_settings(), env, KEYS, set())


def test_settings_and_environment_must_agree() -> None:
    with pytest.raises(LiveTradingRefused, match=r"the same as execution\.mode"):
        trading_mode(load_settings(), {"TRIPLEGAIN_TRADING_MODE": "live"})
    with pytest.raises(LiveTradingRefused, match=r"the same as execution\.mode"):
        trading_mode(live_settings(), {})
    with pytest.raises(LiveTradingRefused, match="paper or live"):
        trading_mode(load_settings(), {"TRIPLEGAIN_TRADING_MODE": "real"})


def test_keys_come_from_the_environment_only_when_both_are_set() -> None:
    both = {"TRIPLEGAIN_EXCHANGE_API_KEY": "key-4711", "TRIPLEGAIN_EXCHANGE_SECRET": "secret-0815"}

    keys = ExchangeKeys.from_environment(both)

    assert keys is not None and keys.api_key.get_secret_value() == "key-4711" and keys.source == "environment"
    assert "4711" not in repr(keys) and "0815" not in repr(keys)
    assert ExchangeKeys.from_environment({"TRIPLEGAIN_EXCHANGE_API_KEY": "k"}) is None


def test_paper_and_live_never_share_a_database() -> None:
    check_database_mode("paper", {"paper"})
    check_database_mode("live", set())
    with pytest.raises(LiveTradingRefused, match="holds a live account"):
        check_database_mode("paper", {"paper", "live"})
    with pytest.raises(LiveTradingRefused, match="holds a paper account"):
        authorize_live(live_settings(), LIVE_ENV, KEYS, {"paper"})


def test_a_bad_execution_setting_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"execution\.mode"):
        load_settings(execution={"mode": "yolo"})


def test_a_trailing_stop_is_allowed_live_the_exchange_stop_follows_it() -> None:
    settings = load_settings(
        execution={"mode": "live"}, market={"source": "ccxt"}, watch={"trailing_stop": True}
    )

    assert authorize_live(settings, LIVE_ENV, KEYS, set()).keys == KEYS
