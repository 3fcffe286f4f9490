"""End to end on a real Prefect server backed by PostgreSQL: `triplegain serve` serves the five deployments,
a trading cycle and a DCA batch are triggered through the Prefect API, and their artifacts and the DCA
schedule are checked on the server. Needs TRIPLEGAIN_TEST_POSTGRES_URL (skipped, visibly, without it)."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ENV
from tests.e2e.servers import PREFECT, ROOT, TRIPLEGAIN, clean_env, free_port, start, stop, wait_for

DEPLOYMENTS = {"trading-cycle", "sentiment-refresh", "market-watch", "portfolio-check", "dca-rebalance"}

pytestmark = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"the end-to-end server test needs {POSTGRES_ENV}"
)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: one for the Prefect server, one for the project."""
    import psycopg

    base = make_url(os.environ[POSTGRES_ENV])
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    names = [f"tg_e2e_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("prefect", "project")]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            base.set(drivername="postgresql+asyncpg", database=names[0]).render_as_string(
                hide_password=False
            ),
            base.set(drivername="postgresql+psycopg", database=names[1]).render_as_string(
                hide_password=False
            ),
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_served_deployments_run_a_cycle_and_a_dca_batch_through_the_api(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    prefect_db, project_db = databases
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    logs = [server_log, serve_log]
    server = start(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL=prefect_db),
        server_log,
    )
    served = None
    client = httpx.Client(base_url=api, timeout=30)
    try:
        wait_for("the Prefect server", lambda: client.get("/health").status_code == 200, 180, logs)
        served = start(
            [str(TRIPLEGAIN), "serve"],
            clean_env(
                tmp_path,
                PREFECT_API_URL=api,
                TRIPLEGAIN_DATABASE_URL=project_db,
                PREFECT_RUNNER_POLL_FREQUENCY="2",
            ),
            serve_log,
        )

        def deployments() -> dict[str, dict[str, Any]] | None:
            found = {d["name"]: d for d in client.post("/deployments/filter", json={}).json()}
            return found if set(found) >= DEPLOYMENTS else None

        by_name = wait_for("the five deployments", deployments, 120, logs)
        assert by_name["trading-cycle"]["schedules"][0]["schedule"]["cron"] == "0 * * * *"
        assert by_name["dca-rebalance"]["schedules"] == []

        def run(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
            created = client.post(
                f"/deployments/{by_name[name]['id']}/create_flow_run", json={"parameters": parameters}
            )
            created.raise_for_status()
            return finished(created.json()["id"], name)

        def finished(run_id: str, what: str) -> dict[str, Any]:
            def state() -> dict[str, Any] | None:
                flow_run = client.get(f"/flow_runs/{run_id}").json()
                return flow_run if flow_run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED"} else None

            flow_run = wait_for(f"the {what} run", state, 240, logs)
            assert flow_run["state"]["type"] == "COMPLETED", flow_run["state"]
            return flow_run

        cycle = run("trading-cycle", {"at": "2024-06-30T20:00Z"})
        assert client.get(f"/flow_runs/{cycle['id']}").json()["name"] == "cycle-20240630T2000Z"

        def shipped() -> list[dict[str, Any]] | None:  # the runner ships logs in batches: wait for them all
            found = client.post(
                "/logs/filter", json={"logs": {"flow_run_id": {"any_": [cycle["id"]]}}}
            ).json()
            named = any("cycle cycle-20240630T2000Z" in log["message"] for log in found)
            return found if named and len(found) >= 10 else None

        cycle_logs = wait_for("the cycle's logs on the server", shipped, 60, logs)
        assert len(cycle_logs) >= 10 and {log["level"] for log in cycle_logs} >= {20}  # INFO reaches the API
        run("portfolio-check", {})

        def dca_runs() -> list[dict[str, Any]] | None:
            runs = client.post(
                "/flow_runs/filter",
                json={"flow_runs": {"deployment_id": {"any_": [by_name["dca-rebalance"]["id"]]}}},
            ).json()
            return runs if len(runs) >= 6 else None

        batches = sorted(
            wait_for("the DCA schedule", dca_runs, 60, logs), key=lambda r: r["parameters"]["batch_index"]
        )
        assert [r["parameters"]["batch_index"] for r in batches] == list(range(6))
        assert len({r["parameters"]["plan_id"] for r in batches}) == 1
        plan = batches[0]["parameters"]["plan_id"]
        assert [r["name"] for r in batches] == [f"dca-{plan}-b{i}" for i in range(6)]  # named when scheduled
        finished(batches[0]["id"], "first DCA batch")
        later = [client.get(f"/flow_runs/{r['id']}").json() for r in batches[1:]]
        assert {r["state"]["type"] for r in later} == {"SCHEDULED"}
        gaps = [
            (
                time.mktime(time.strptime(b["expected_start_time"][:19], "%Y-%m-%dT%H:%M:%S"))
                - time.mktime(time.strptime(a["expected_start_time"][:19], "%Y-%m-%dT%H:%M:%S"))
            )
            for a, b in itertools.pairwise(later)
        ]
        assert all(abs(g - 4 * 3600) < 60 for g in gaps)

        # A newer plan supersedes this one: its scheduled runs on the server are cancelled.
        run("portfolio-check", {"force": True})
        superseded = [client.get(f"/flow_runs/{r['id']}").json()["state"]["type"] for r in batches[1:]]
        assert superseded == ["CANCELLED"] * 5

        keys = {a["key"] for a in client.post("/artifacts/filter", json={}).json() if a.get("key")}
        assert {
            "trading-cycle-report",
            "trading-cycle-positions",
            "portfolio-check",
            "dca-rebalance-report",
            "dca-rebalance-positions",
        } <= keys
        from triplegain.storage import create_db_engine, unit_of_work
        from triplegain.storage.dca import load_plans

        engine = create_db_engine(project_db)
        with unit_of_work(engine) as session:
            intents = session.execute(text("SELECT intent, count(*) FROM orders GROUP BY intent")).all()
            plans = load_plans(session)
        engine.dispose()
        old = next(p for p in plans if p.status == "superseded")
        assert [b.status for b in old.batches] == ["executed"] + ["cancelled"] * 5
        assert [b.prefect_flow_run_id for b in old.batches] == [r["id"] for r in batches]
        # The cycle's BTC buy, batch 0's BTC and XRP buys (and the stop or target the batch's prices reached).
        assert dict(intents)["open"] == 1 and dict(intents)["rebalance"] >= 2  # the newer plan may have begun
    finally:
        client.close()
        if served is not None:
            stop(served)
        stop(server)


def test_deployments_on_a_process_work_pool_with_two_workers_complete_every_run_once(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """`prefect deploy --all` from prefect.yaml onto a process work pool, two workers; four trading-cycle
    hours and four market watches triggered at once. Every run completes on one of the workers, each hour
    and slot is settled once, no order is doubled and the account's balances are its fills."""
    prefect_db, project_db = databases
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_log = tmp_path / "server.log"
    worker_logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    logs = [server_log, *worker_logs]
    server = start(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL=prefect_db),
        server_log,
    )
    env = clean_env(
        tmp_path,
        PREFECT_API_URL=api,
        TRIPLEGAIN_DATABASE_URL=project_db,
        TRIPLEGAIN_PROJECT_DIR=str(ROOT),
        PREFECT_WORKER_QUERY_SECONDS="2",
    )
    workers: list[Any] = []
    client = httpx.Client(base_url=api, timeout=30)
    try:
        wait_for("the Prefect server", lambda: client.get("/health").status_code == 200, 180, logs)
        for args in (
            ["work-pool", "create", "triplegain", "--type", "process"],
            ["--no-prompt", "deploy", "--all"],
        ):
            done = subprocess.run(
                [str(PREFECT), *args],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        by_name = {d["name"]: d for d in client.post("/deployments/filter", json={}).json()}
        assert set(by_name) >= DEPLOYMENTS
        assert {d["work_pool_name"] for d in by_name.values()} == {"triplegain"}
        for i, log in enumerate(worker_logs, start=1):
            workers.append(
                start(
                    [str(PREFECT), "worker", "start", "--pool", "triplegain", "--name", f"worker-{i}"],
                    env,
                    log,
                )
            )

        def online() -> list[dict[str, Any]] | None:
            found = client.post("/work_pools/triplegain/workers/filter", json={}).json()
            return found if len({w["name"] for w in found} & {"worker-1", "worker-2"}) == 2 else None

        wait_for("both workers", online, 120, logs)
        hours = [f"2024-06-30T{h}:00Z" for h in (17, 18, 19, 20)]
        requested = [("trading-cycle", {"at": at}) for at in hours] + [
            ("market-watch", {"at": at.replace(":00Z", ":30Z")}) for at in hours
        ]
        ids = []
        for name, parameters in requested:  # all at once: the deployments' limits queue them
            created = client.post(
                f"/deployments/{by_name[name]['id']}/create_flow_run", json={"parameters": parameters}
            )
            created.raise_for_status()
            ids.append(created.json()["id"])

        def all_final() -> list[dict[str, Any]] | None:
            runs = [client.get(f"/flow_runs/{i}").json() for i in ids]
            final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
            return runs if all(r["state"]["type"] in final for r in runs) else None

        runs = wait_for("the eight runs", all_final, 600, logs)
        assert [r["state"]["type"] for r in runs] == ["COMPLETED"] * 8, [
            (r["name"], r["state"]["type"], r["state"]["message"]) for r in runs
        ]
        # Both workers reach for the same runs; the server lets one have each, and it runs once: its
        # process prints the run's page once, in one worker's log.
        texts = [log.read_text(errors="replace") for log in worker_logs]
        started = {i: sum(t.count(f"/runs/flow-run/{i}") for t in texts) for i in ids}
        assert set(started.values()) == {1}, started

        from triplegain.storage import create_db_engine, unit_of_work

        engine = create_db_engine(project_db)
        with unit_of_work(engine) as session:
            cycles = session.execute(text("SELECT id FROM cycles ORDER BY id")).scalars().all()
            doubled = session.execute(
                text(
                    "SELECT cycle_id, symbol, intent, count(*) FROM orders "
                    "GROUP BY cycle_id, symbol, intent HAVING count(*) > 1"
                )
            ).all()
            fills = session.execute(text("SELECT symbol, side, price, size, fee, fee_asset FROM fills")).all()
            balances = session.execute(
                text("SELECT balances FROM portfolio_snapshots ORDER BY id DESC LIMIT 1")
            ).scalar_one()
            started = session.execute(text("SELECT run_key, prefect_flow_run_id FROM flow_runs")).all()
        engine.dispose()
        by_schedules = {key for key, prefect_id in started if prefect_id not in ids}
        assert doubled == []
        # Each hour settled once (a run for an hour behind the account changes nothing and stores nothing).
        # The deployments' schedules are live: a portfolio check at :15 may have planned and run a DCA batch,
        # and the market-watch (every 5 minutes) and trading-cycle (hourly) schedules may have run at the
        # replay clock's hour (a fresh account's first, 2024-06-01 00:00, or the hour after its last cycle):
        # every other run is one of those the test triggered.
        triggered = [c for c in cycles if not c.startswith(("dca-", "check-")) and c not in by_schedules]
        assert len(cycles) == len(set(cycles)) and set(triggered) <= {
            *(f"cycle-20240630T{h}00Z" for h in (17, 18, 19, 20)),
            *(f"watch-20240630T{h}{m}Z" for h in (17, 18, 19, 20) for m in ("00", "30")),
        }
        assert "cycle-20240630T2000Z" in cycles or "watch-20240630T2030Z" in cycles
        # The balances are the initial 10,000 USDT and the fills, to the last digit.
        expected: dict[str, Decimal] = {"USDT": Decimal(10_000)}
        for symbol, side, price, size, fee, fee_asset in fills:
            base, quote = symbol.split("/")
            sign = 1 if side == "buy" else -1
            expected[base] = expected.get(base, Decimal(0)) + sign * Decimal(str(size))
            expected[quote] = expected.get(quote, Decimal(0)) - sign * Decimal(str(price)) * Decimal(
                str(size)
            )
            expected[fee_asset] = expected.get(fee_asset, Decimal(0)) - Decimal(str(fee))
        stored = {k: Decimal(v) for k, v in balances.items()}
        assert {k: v for k, v in expected.items() if v} == {k: v for k, v in stored.items() if v}
    finally:
        client.close()
        for worker in workers:
            stop(worker)
        stop(server)
