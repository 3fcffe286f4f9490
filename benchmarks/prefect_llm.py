"""What a Prefect server's database costs the LLM calls: ask-llm on a SQLite- vs a PostgreSQL-backed server.

    .venv/bin/python benchmarks/prefect_llm.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Starts a real `prefect server` (SQLite, then PostgreSQL in a database of its own, dropped afterwards), runs
six trading cycles with two models answered by the local fake LLM server (no network), and prints the cycle
times and the ask-llm task run times. Each ask-llm task holds a Prefect global-concurrency slot per provider.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(database: str, port: int) -> tuple[list[float], list[float]]:
    """Start a server on `database` in a child process that runs the cycles; returns (cycles, asks) in s."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", database, "--port", str(port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"the {database} run failed:\n{child.stderr[-3000:]}")
    cycles, asks = child.stdout.strip().splitlines()[-2:]
    return [float(x) for x in cycles.split()], [float(x) for x in asks.split()]


def child(database: str, port: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TRIPLEGAIN_"))}
    env |= {"PREFECT_HOME": str(tmp / "server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"PREFECT_UI_ENABLED": "false"}
    if database != "sqlite":
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
    with (tmp / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        os.environ.update(
            {
                "PREFECT_API_URL": api,
                "PREFECT_HOME": str(tmp / "client"),
                "PREFECT_LOGGING_LEVEL": "ERROR",
                "TRIPLEGAIN_DATABASE_URL": f"sqlite:///{tmp / 'project.db'}",
            }
        )
        sys.path.insert(0, str(ROOT))
        from prefect.client.orchestration import get_client

        from flows.trading_cycle import trading_cycle
        from tests.fakes.llm_server import TEST_KEY, FakeLLMServer

        with FakeLLMServer() as fake:
            fake.default = fake.answer({"action": "HOLD", "confidence": 0.6, "reasoning": "mixed signals"})
            providers = {
                "v1": {"kind": "openai", "model": "a", "base_url": f"{fake.url}/v1", "api_key": TEST_KEY},
                "v2": {"kind": "anthropic", "model": "b", "base_url": fake.url, "api_key": TEST_KEY},
            }
            config = tmp / "llm.yaml"
            config.write_text(
                yaml.safe_dump({"llm": {"providers": providers, "decision_models": ["v1", "v2"]}})
            )
            cycles = []
            for hour in range(10, 16):
                began = time.perf_counter()
                trading_cycle(at=f"2024-06-29T{hour}:00Z", config_file=str(config))
                cycles.append(time.perf_counter() - began)
        with get_client(sync_client=True) as client:
            asks = [
                (r.end_time - r.start_time).total_seconds()
                for r in client.read_task_runs()
                if r.name.startswith("ask-") and r.end_time and r.start_time
            ]
        print(" ".join(f"{c:.3f}" for c in cycles))
        print(" ".join(f"{a:.3f}" for a in asks))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child")
    parser.add_argument("--port", type=int, default=4391)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port)
        return
    name = f"triplegain_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        pg = args.postgres.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
        results = {"SQLite": run("sqlite", 4392), "PostgreSQL": run(pg, 4393)}
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("6 trading cycles, 2 symbols x 2 models (fake LLM server), through a real Prefect server")
    for label, (cycles, asks) in results.items():
        print(
            f"  {label:10} server: cycle median {statistics.median(cycles):.2f} s (first {cycles[0]:.2f} s); "
            f"{len(asks)} ask-llm runs, median {statistics.median(asks):.2f} s, max {max(asks):.2f} s"
        )


if __name__ == "__main__":
    main()
