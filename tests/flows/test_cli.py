"""`triplegain run` in-process: the table, the JSON, and one-line failures with exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.setenv(key, "INFO" if key.endswith("LEVEL") else "false")  # restored after the test
    return CliRunner()


def test_run_prints_the_report_table(runner: CliRunner, project_db: str) -> None:
    result = runner.invoke(app, ["run", "--at", "2024-06-30T20:00Z"])

    assert result.exit_code == 0, result.output
    assert "cycle-20240630T2000Z" in result.stdout and "BTC/USDT" in result.stdout
    assert "equity:" in result.stdout and "offline-deterministic" in result.stdout


def test_run_json_is_the_typed_report(runner: CliRunner, project_db: str) -> None:
    result = runner.invoke(app, ["run", "--at", "2024-06-12T07:00Z", "--symbols", "XRP/USDT", "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cycle_id"] == "cycle-20240612T0700Z" and [s["symbol"] for s in data["symbols"]] == [
        "XRP/USDT"
    ]


def test_failure_exits_1_with_a_one_line_reason(runner: CliRunner, project_db: str) -> None:
    result = runner.invoke(app, ["run", "--at", "2024-04-02T00:00Z"])

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "CycleError: every symbol failed" in errors[0]


def test_bad_time_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "--at", "yesterday"])

    assert result.exit_code == 2 and "not an ISO-8601 time" in result.output


def test_bad_configuration_exits_1_naming_the_key(
    runner: CliRunner, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_RISK__MAX_LEVERAGE", "0")

    result = runner.invoke(app, ["run"])

    assert result.exit_code == 1 and "risk.max_leverage='0'" in result.stderr
