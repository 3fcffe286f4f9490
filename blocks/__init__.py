"""Prefect Block types: typed, secret-holding configuration."""

from blocks.database import DatabaseConfig

__all__ = ["DatabaseConfig"]
