"""The one settings loader of every entry point: flows, the CLI and the notebook functions.

Settings come from keyword overrides, the environment, the YAML file and the defaults
(`triplegain.settings.load_settings`); then, whenever a Prefect API is configured by any means Prefect
accepts (PREFECT_API_URL in the environment, the active profile, a `.env` or `prefect.toml` file, a test
harness), the database URL comes from the `triplegain-database` block if one is saved there. Without a
configured API there is no server that could hold a block (a lookup would only start a temporary one), so
every entry point uses the configured URL alike: `triplegain pause` always writes to the database the
deployments trade on.

Importing Prefect takes seconds, so commands that run no flow (`status`, `pause`, `dca status`, ...) import
it only when one of the places Prefect reads its API URL from could hold one.

    from flows.settings import load_run_settings
    settings = load_run_settings("my.yaml", symbols=["BTC/USDT"])
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from triplegain.settings import Settings, load_settings
from triplegain.storage import engine_for


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to, as Prefect itself resolves it; None when none is configured."""
    if not _api_may_be_configured():
        return None
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
    from blocks.database import with_database_from_block

    return with_database_from_block(settings)[0]


def preflight(config_file: str | Path | None = None, symbols: list[str] | None = None) -> Settings:
    """The settings a run would load, and its database reached and migrated: what the CLI checks before
    it starts a flow (and a temporary server). ConfigError or DatabaseUnavailable when either is wrong."""
    settings = load_run_settings(config_file, symbols)
    engine_for(settings)
    return settings


def _api_may_be_configured() -> bool:
    """False only when no source Prefect reads its settings from could set an API URL: the environment,
    the profiles file, and `.env`, `prefect.toml` and `pyproject.toml` in the working directory. Once
    Prefect is imported (a test harness, a flow run) it is asked, since its settings may live in memory."""
    if "prefect" in sys.modules or "PREFECT_API_URL" in os.environ:
        return True
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    return (
        _mentions(profiles, "PREFECT_API_URL")
        or _mentions(Path(".env"), "PREFECT_API_URL")
        or Path("prefect.toml").exists()
        or _mentions(Path("pyproject.toml"), "tool.prefect")
    )


def _mentions(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except OSError:
        return False
