"""Persistence: SQLAlchemy 2 tables, Alembic migrations, engines and the repository."""

from triplegain.storage.database import create_db_engine, migrate, unit_of_work
from triplegain.storage.repository import load_account, load_report, save_cycle

__all__ = ["create_db_engine", "load_account", "load_report", "migrate", "save_cycle", "unit_of_work"]
