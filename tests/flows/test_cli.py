"""`triplegain run` in-process: the table, the JSON, and one-line failures with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import QUIET_LOGGING, app
from tests.flows.fresh_process import run_cli


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.setenv(key, "INFO" if key.endswith("LEVEL") else "false")  # restored after the test
    for key, level in QUIET_LOGGING.items():  # what the CLI sets, undone for the processes tests start later
        monkeypatch.setenv(key, level)
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


def test_watch_prints_its_own_table_not_the_cycles(runner: CliRunner, project_db: str) -> None:
    result = runner.invoke(app, ["watch", "--at", "2024-06-30T20:05Z"])

    assert result.exit_code == 0, result.output
    assert "watch-20240630T2005Z" in result.stdout and "exits and orders" in result.stdout
    assert "TA bias" not in result.stdout and "regime" not in result.stdout


def test_version(runner: CliRunner) -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0 and result.stdout.strip() == f"triplegain {version('triplegain')}"


def test_bad_time_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "--at", "yesterday"])

    assert result.exit_code == 2 and "not an ISO-8601 time" in result.output


def test_bad_configuration_exits_1_naming_the_key(
    runner: CliRunner, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_RISK__MAX_LEVERAGE", "0")

    result = runner.invoke(app, ["run"])

    assert result.exit_code == 1 and "risk.max_leverage='0'" in result.stderr


@pytest.mark.parametrize(
    ("option", "environment", "expected"),
    [
        (["--config", "missing.yaml"], {}, "missing.yaml"),
        (["--symbols", "DOGE/USDT"], {}, "unknown symbol 'DOGE/USDT'"),
        (
            [],
            {"TRIPLEGAIN_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"},
            "DatabaseUnavailable",
        ),
    ],
    ids=["config file", "symbol", "database"],
)
def test_a_bad_setting_fails_before_any_server_starts(
    option: list[str], environment: dict[str, str], expected: str, tmp_path: Path
) -> None:
    """Found in the settings or the database before Prefect is even imported: no temporary server, no
    failed flow run left behind, one line."""
    done = run_cli(["run", *option], tmp_path, **environment)

    assert done.stdout.strip() == "exit 1 prefect imported: False", done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "temporary Prefect server" not in done.stderr


def test_ctrl_c_is_the_interruption_not_a_failure_even_with_an_error_on_the_way_out(
    runner: CliRunner, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a run is "interrupted" and 130 (it was click's "Aborted!" and 1). A server that does
    not share the command's terminal can die on its own while it is handled: reporting the interrupted run
    then fails inside the handling of the KeyboardInterrupt. That is the interruption too, not an error."""

    def interrupted(**parameters: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ConnectionRefusedError(111, "Connection refused") from None  # the server died with it

    def failed(**parameters: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    def ctrl_c(**parameters: object) -> None:  # the server deaf to it (flows.ctrl_c): the interrupt alone
        raise KeyboardInterrupt

    monkeypatch.setattr("flows.serve.load_flow", lambda entrypoint: interrupted)
    stopped = runner.invoke(app, ["run", "--at", "2024-06-30T20:00Z"])
    monkeypatch.setattr("flows.serve.load_flow", lambda entrypoint: failed)
    refused = runner.invoke(app, ["run", "--at", "2024-06-30T20:00Z"])
    monkeypatch.setattr("flows.serve.load_flow", lambda entrypoint: ctrl_c)
    plain = runner.invoke(app, ["run", "--at", "2024-06-30T20:00Z"])

    assert stopped.exit_code == 130 and "interrupted" in stopped.stderr and "error:" not in stopped.stderr
    assert plain.exit_code == 130 and plain.stderr.strip() == "interrupted"
    assert refused.exit_code == 1 and "error: ConnectionRefusedError" in refused.stderr
