"""Exchange key blocks: found by name, the environment as fallback, the secrets never shown."""

from __future__ import annotations

from pydantic import SecretStr

from blocks.exchange import ExchangeKeysBlock, exchange_keys

KEY, SECRET = "kraken-key-SECRET-4711", "kraken-secret-SECRET-0815"


def test_a_saved_block_supplies_the_keys() -> None:
    ExchangeKeysBlock(api_key=SecretStr(KEY), secret=SecretStr(SECRET)).save("exchange-test", overwrite=True)

    keys = exchange_keys(
        {"TRIPLEGAIN_EXCHANGE_BLOCK": "exchange-test", "TRIPLEGAIN_EXCHANGE_API_KEY": "other"}
    )

    assert keys is not None and keys.source == "block:exchange-test"
    assert keys.api_key.get_secret_value() == KEY and keys.secret.get_secret_value() == SECRET
    assert KEY not in repr(keys) and SECRET not in repr(ExchangeKeysBlock.load("exchange-test"))


def test_without_a_block_the_environment_gives_the_keys_or_nothing() -> None:
    env = {"TRIPLEGAIN_EXCHANGE_BLOCK": "no-such-block"}

    assert exchange_keys(env) is None
    keys = exchange_keys({**env, "TRIPLEGAIN_EXCHANGE_API_KEY": KEY, "TRIPLEGAIN_EXCHANGE_SECRET": SECRET})
    assert keys is not None and keys.source == "environment"
