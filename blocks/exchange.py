"""Exchange API keys as a Prefect Block (both SecretStr), with the environment as fallback (issue 16)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.live_gate import ExchangeKeys

DEFAULT_BLOCK_NAME = "triplegain-exchange"


class ExchangeKeysBlock(Block):
    """The key and secret of the exchange account live orders go to. Save it as `triplegain-exchange`:

    ExchangeKeysBlock(api_key="...", secret="...").save("triplegain-exchange")

    Give the key trading rights only: no withdrawals.
    """

    _block_type_name = "TripleGain Exchange Keys"
    _block_type_slug = "triplegain-exchange-keys"
    _description = "API key and secret of the exchange account TripleGain trades live on (trade rights only)."

    api_key: SecretStr = Field(description="Never logged or stored outside this block")
    secret: SecretStr = Field(description="Never logged or stored outside this block")


def exchange_keys(environ: Mapping[str, str] | None = None) -> ExchangeKeys | None:
    """The keys from the block named by TRIPLEGAIN_EXCHANGE_BLOCK (default 'triplegain-exchange'), else
    from TRIPLEGAIN_EXCHANGE_API_KEY and _SECRET, else None. An unreachable Prefect API is an error, not
    'no keys': the caller must not carry on as if none were configured."""
    environ = os.environ if environ is None else environ
    name = environ.get("TRIPLEGAIN_EXCHANGE_BLOCK", DEFAULT_BLOCK_NAME)
    try:
        block = ExchangeKeysBlock.load(name)
    except ValueError:  # no such block saved
        return ExchangeKeys.from_environment(environ)
    except httpx.HTTPError as e:
        problem = ConfigProblem(f"block {name}", "<unread>", f"a reachable Prefect API ({type(e).__name__})")
        raise ConfigError([problem]) from e
    return ExchangeKeys(block.api_key, block.secret, f"block:{name}")
