"""Rebalancing and DCA end to end under the Prefect test harness (no dca-rebalance deployment there, so the
due batch runs in the check and later ones through run_due_batches)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from flows import control
from flows.control import dca_status
from flows.rebalance import dca_rebalance, portfolio_check, run_due_batches
from tests.flows.test_trading_cycle import count
from triplegain.storage import create_db_engine, unit_of_work
from triplegain.storage.tables import DcaBatchRow, OrderRow


def orders(url: str) -> int:
    return count(url, OrderRow)


def move_due(url: str, plan_id: str, index: int, when: datetime) -> None:
    """Pretend the clock reached a batch: its due time becomes `when`."""
    engine = create_db_engine(url)
    with unit_of_work(engine) as s:
        s.execute(
            update(DcaBatchRow)
            .where(DcaBatchRow.plan_id == plan_id, DcaBatchRow.batch_index == index)
            .values(scheduled_at=when)
        )
    engine.dispose()


def test_a_large_rebalance_becomes_six_batches_and_each_runs_once(project_db: str) -> None:
    check = portfolio_check()  # a fresh account is all USDT: buy a third each of BTC and XRP

    assert check.decision.action == "rebalance" and check.plan_id is not None
    assert [t.symbol for t in check.decision.trades] == ["BTC/USDT", "XRP/USDT"]
    assert [b.status for b in check.batches] == ["executed"] + ["pending"] * 5
    assert orders(project_db) == 2 and not check.scheduled_on_server
    plan = check.plan_id

    assert dca_rebalance(plan, 0).status == "executed" and orders(project_db) == 2  # a retried run: nothing
    with pytest.raises(ValueError, match="not due until"):
        dca_rebalance(plan, 1)
    assert run_due_batches() == []

    move_due(project_db, plan, 1, datetime.now(UTC) - timedelta(minutes=1))
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(dca_rebalance(plan, 1))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert orders(project_db) == 4  # two duplicated runs of batch 1: one set of orders
    assert {getattr(r, "status", None) for r in results} == {"executed"}
    later = portfolio_check()
    assert later.decision.action == "none" and "next is allowed" in later.decision.reason


def test_a_batch_due_while_paused_is_skipped_and_never_run_later(project_db: str) -> None:
    plan = portfolio_check().plan_id
    assert plan is not None
    control.pause("FOMC", actor="ana")
    move_due(project_db, plan, 1, datetime.now(UTC))

    skipped = run_due_batches()
    control.resume("after FOMC", actor="ana")

    assert [(b.index, b.status) for b in skipped] == [
        (1, "skipped")
    ] and "while the coordinator was paused" in (skipped[0].note or "")
    assert dca_rebalance(plan, 1).status == "skipped" and orders(project_db) == 2
    # A batch whose time fell inside the pause, run only after the resume, is skipped as well.
    changes = control.status().recent_changes
    paused_at = min(c.at for c in changes)
    move_due(project_db, plan, 2, paused_at + (max(c.at for c in changes) - paused_at) / 2)
    assert dca_rebalance(plan, 2).status == "skipped" and orders(project_db) == 2


def test_a_newer_plan_supersedes_the_old_one_and_cancels_its_batches(project_db: str) -> None:
    first = portfolio_check()
    second = portfolio_check(force=True)

    assert second.plan_id != first.plan_id
    assert {(b.plan_id, b.status) for b in second.cancelled} == {(first.plan_id, "cancelled")}
    assert len(second.cancelled) == 5
    assert first.plan_id is not None
    move_due(project_db, first.plan_id, 3, datetime.now(UTC) - timedelta(hours=1))
    assert dca_rebalance(first.plan_id, 3).status == "cancelled"
    statuses = {p.id: p.status for p in dca_status()}
    assert statuses == {first.plan_id: "superseded", second.plan_id: "active"}


def test_an_unknown_batch_is_a_clear_error(project_db: str) -> None:
    with pytest.raises(ValueError, match="no DCA batch nope#0"):
        dca_rebalance("nope", 0)


def test_cli_rebalance_and_dca(project_db: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    checked = runner.invoke(app, ["rebalance"])
    shown = runner.invoke(app, ["dca", "status"])
    due = runner.invoke(app, ["dca", "run-due"])
    again = runner.invoke(app, ["rebalance"])

    assert checked.exit_code == 0, checked.stderr
    assert "Portfolio check: rebalance" in checked.stdout and "buy 3333.00 USD of BTC/USDT" in checked.stdout
    assert "# Portfolio" not in checked.stdout and "|---" not in checked.stdout  # rendered, not raw markdown
    assert shown.exit_code == 0 and "(active), 6666.00 USD" in shown.stdout and "batch 5 at" in shown.stdout
    assert due.exit_code == 0 and "no batch is due" in due.stdout
    status = runner.invoke(app, ["status"])
    assert (
        "rebalance plan: " in status.stdout
        and "6666.00 USD in 6 batch(es): 1 executed, 5 pending" in status.stdout
    )
    assert again.exit_code == 0 and "Portfolio check: none" in again.stdout


def test_backtest_flow_publishes_its_results() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.backtest import METRICS_KEY, PLOT_KEY, PROGRESS_KEY, backtest

    state = backtest(start="2024-06-28T00:00Z", end="2024-06-30T23:00Z", return_state=True)  # type: ignore[call-arg]
    result = state.result()

    assert result.hours == 72 and set(result.baselines) == {"buy_and_hold", "drift_rebalanced"}
    with get_client(sync_client=True) as client:
        artifacts = {
            key: client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            for key in (METRICS_KEY, PLOT_KEY, PROGRESS_KEY)
        }
    mine = {
        key: [a for a in found if a.flow_run_id == state.state_details.flow_run_id]
        for key, found in artifacts.items()
    }
    assert "drift_rebalanced" in str(mine[METRICS_KEY][0].data)
    table = json.loads(str(mine[METRICS_KEY][0].data))  # rounded for the eye; the JSON result keeps all
    assert all(round(v, 2) == v for row in table for v in row.values() if isinstance(v, float))
    assert str(mine[PLOT_KEY][0].data).count("](data:image/png;base64,iVBORw0KGgo") == 1  # a PNG, inline
    assert [a.data for a in mine[PROGRESS_KEY]] == [100.0]  # updated to the end


def test_cli_backtest_writes_json_and_plot(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from flows.cli import app

    out = Path(str(tmp_path)) / "bt" / "result.json"
    ran = CliRunner().invoke(app, ["backtest", "--start", "2024-06-25T00:00Z", "--out", str(out)])
    bad = CliRunner().invoke(app, ["backtest", "--start", "2024-06-25T00:00Z", "--end", "2024-06-01T00:00Z"])

    assert ran.exit_code == 0, ran.stderr
    assert "buy_and_hold" in ran.stdout and "drift_rebalanced" in ran.stdout
    assert "decisions by the offline model" in ran.stdout
    saved = json.loads(out.read_text())
    assert saved["hours"] == len(saved["equity"]) == 145  # to the end of the data, 2024-07-01 00:00
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bad.exit_code == 1 and "before it starts" in bad.stderr
