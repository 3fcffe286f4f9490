"""The project database's URL as a Prefect Block (a SecretStr), with the environment as fallback."""

from __future__ import annotations

import os

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, ValidationError

from triplegain.errors import ConfigError, ConfigProblem
from triplegain.settings import Settings

DEFAULT_BLOCK_NAME = "triplegain-database"


class DatabaseConfig(Block):
    """Where TripleGain keeps its own data (never Prefect's database).

    Create one in the UI or with
    `DatabaseConfig(url="postgresql+psycopg://user:pass@host/db").save("triplegain-database")`.
    """

    _block_type_name = "TripleGain Database"
    _block_type_slug = "triplegain-database"
    _description = (
        "SQLAlchemy URL of the TripleGain project database (SQLite file or PostgreSQL via psycopg)."
    )

    url: SecretStr = Field(description="sqlite:///path or postgresql+psycopg://user:password@host:5432/db")


def block_name() -> str:
    """The block to look for: TRIPLEGAIN_DATABASE_BLOCK, or 'triplegain-database'."""
    return os.environ.get("TRIPLEGAIN_DATABASE_BLOCK", DEFAULT_BLOCK_NAME)


def with_database_from_block(settings: Settings) -> tuple[Settings, str]:
    """Settings whose database URL comes from the block when one is saved; otherwise unchanged.

    Returns the settings and where the URL came from ('block:<name>' or 'environment').
    """
    name = block_name()
    try:
        block = DatabaseConfig.load(name)
    except ValueError:  # no such block saved
        return settings, "environment"
    except httpx.HTTPError as e:  # the server is down: running on another database would be worse
        problem = ConfigProblem(
            f"block {name}", "<unread>", f"a reachable Prefect API ({type(e).__name__}: {e})"
        )
        raise ConfigError([problem]) from e
    data = settings.model_dump()
    data["database_url"] = block.url
    try:
        return Settings.model_validate(data), f"block:{name}"
    except ValidationError as e:
        problem = ConfigProblem(
            f"block {name}.url", "<hidden>", e.errors()[0]["msg"].removeprefix("Value error, ")
        )
        raise ConfigError([problem]) from None
