"""The layer rule of ARCHITECTURE.md and the project's machinery."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    # A subprocess: import-linter reconfigures logging in-process, silencing every existing logger.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_domain_never_imports_outer_layers_or_prefect() -> None:
    forbidden = {"prefect", "flows", "tasks", "blocks"}
    offenders = []
    for path in (ROOT / "triplegain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in forbidden]

    assert offenders == []


@pytest.mark.parametrize(
    ("name", "cron"),
    [
        ("trading-cycle", "0 * * * *"),
        ("sentiment-refresh", "*/30 * * * *"),
        ("market-watch", "2-59/5 * * * *"),
        ("portfolio-check", "15 * * * *"),
    ],
)
def test_prefect_yaml_declares_each_scheduled_flow_one_run_at_a_time(name: str, cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployment = {d["name"]: d for d in config["deployments"]}[name]

    module_path, _, function = deployment["entrypoint"].partition(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    assert getattr(module, function).name == name
    assert deployment["schedules"][0]["cron"] == cron
    CronSchedule(cron=cron, timezone="UTC")  # Prefect accepts it (raises on a malformed expression)
    # A cycle or a watch started while one runs waits its turn (each is idempotent per hour or slot); a
    # refresh or a check that would collide is dropped, the next one is minutes away.
    strategy = "ENQUEUE" if name in ("trading-cycle", "market-watch") else "CANCEL_NEW"
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": strategy}


def test_readme_opens_with_the_run_and_test_commands() -> None:
    blocks = (ROOT / "README.md").read_text().split("```bash\n")
    run_command, test_command = blocks[1].split("\n")[0], blocks[2].split("\n")[0]

    assert run_command.endswith("triplegain run")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_serve_builds_the_five_deployments_from_prefect_yaml() -> None:
    from flows.serve import deployments

    built = {d.name: d for d in deployments(parameters={"config_file": "/etc/tg.yaml", "unknown": 1})}

    assert set(built) == {
        "trading-cycle",
        "sentiment-refresh",
        "market-watch",
        "portfolio-check",
        "dca-rebalance",
    }
    assert built["dca-rebalance"].schedules == []
    assert built["dca-rebalance"].concurrency_options is not None
    assert built["dca-rebalance"].concurrency_options.collision_strategy.value == "ENQUEUE"
    assert all(d.concurrency_limit == 1 for d in built.values())
    assert all(d.parameters == {"config_file": "/etc/tg.yaml"} for d in built.values())
