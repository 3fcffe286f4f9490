"""The one settings loader of every entry point: flows, the CLI and the notebook functions.

Settings come from keyword overrides, the environment, the YAML file and the defaults
(`triplegain.settings.load_settings`); then, whenever a Prefect API is configured by any means Prefect
accepts (PREFECT_API_URL in the environment, the active profile, a `.env` or `prefect.toml` file, a test
harness), the database URL comes from the `triplegain-database` block if one is saved there. Without a
configured API there is no server that could hold a block (a lookup would only start a temporary one), so
every entry point uses the configured URL alike: `triplegain pause` always writes to the database the
deployments trade on.

    from flows.settings import load_run_settings
    settings = load_run_settings("my.yaml", symbols=["BTC/USDT"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blocks.database import with_database_from_block
from triplegain.settings import Settings, load_settings


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to, as Prefect itself resolves it; None when none is configured."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def load_run_settings(
    config_file: str | Path | None = None, symbols: list[str] | None = None, **overrides: Any
) -> Settings:
    """Settings for a run: YAML, environment, `overrides` (and `symbols` replacing the configured ones),
    with the database URL from its block when a Prefect API is configured; ConfigError when invalid."""
    if symbols:
        overrides["market"] = {**overrides.get("market", {}), "symbols": symbols}
    settings = load_settings(config_file, **overrides)
    if prefect_api_url() is None:
        return settings
    return with_database_from_block(settings)[0]
