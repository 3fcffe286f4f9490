"""Prefect Block types: typed, secret-holding configuration."""

from blocks.database import DatabaseConfig
from blocks.exchange import ExchangeKeysBlock

__all__ = ["DatabaseConfig", "ExchangeKeysBlock"]
