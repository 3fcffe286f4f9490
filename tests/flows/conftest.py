"""Flow tests run under the session's Prefect test harness."""

import pytest


@pytest.fixture(autouse=True)
def _harness(prefect_harness: None) -> None:
    """Every flow test needs the Prefect API."""
