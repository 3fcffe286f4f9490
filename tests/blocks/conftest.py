"""Block tests run under the session's Prefect test harness."""

import pytest


@pytest.fixture(autouse=True)
def _harness(prefect_harness: None) -> None:
    """Every block test needs the Prefect API."""
