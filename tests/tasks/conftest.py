"""Task tests run tasks through Prefect's engine (for retries), under the session's test harness."""

import pytest


@pytest.fixture(autouse=True)
def _harness(prefect_harness: None) -> None:
    """Every task test needs the Prefect API."""
