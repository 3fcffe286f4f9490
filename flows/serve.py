"""Serve every deployment of `prefect.yaml` from one process (`triplegain serve`): no work pool needed.

`prefect.yaml` is the single description of the deployments (names, entrypoints, schedules, concurrency
limits); `prefect deploy --all` sends the same ones to a process work pool instead.

    from flows.serve import deployments
    [d.name for d in deployments()]
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment

from blocks.database import DatabaseConfig
from blocks.exchange import ExchangeKeysBlock
from blocks.llm import LLMProvider

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def deployment_specs(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The deployments as `prefect.yaml` declares them."""
    return list(yaml.safe_load(path.read_text())["deployments"])


def load_flow(entrypoint: str) -> Flow[..., Any]:
    """The flow object behind an entrypoint like `flows/trading_cycle.py:trading_cycle`."""
    module_path, _, name = entrypoint.partition(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    if not isinstance(flow, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return flow


def deployments(
    path: Path = PREFECT_YAML, parameters: dict[str, Any] | None = None
) -> list[RunnerDeployment]:
    """One runner deployment per entry of `prefect.yaml`, with its schedules and concurrency limit.

    `parameters` are added to every deployment whose flow takes them (e.g. a `config_file`).
    """
    built = []
    for spec in deployment_specs(path):
        flow = load_flow(spec["entrypoint"])
        accepted = set(flow.parameters.properties)
        params = {
            **spec.get("parameters", {}),
            **{k: v for k, v in (parameters or {}).items() if k in accepted},
        }
        limit = spec.get("concurrency_limit")
        built.append(
            flow.to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                parameters=params,
                schedules=[
                    CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC"))
                    for s in spec.get("schedules", [])
                ],
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=limit["limit"],
                    collision_strategy=ConcurrencyLimitStrategy(limit["collision_strategy"]),
                )
                if limit
                else None,
            )
        )
    return built


def serve_all(config_file: str | None = None, limit: int | None = None) -> None:
    """Serve every deployment until interrupted (Ctrl-C)."""
    params = {"config_file": config_file} if config_file else None
    serve(*deployments(parameters=params), limit=limit)  # type: ignore[arg-type]


def register_blocks() -> list[str]:
    """Register TripleGain's block types with the Prefect server; returns their slugs."""
    kinds = (DatabaseConfig, LLMProvider, ExchangeKeysBlock)
    for block in kinds:
        block.register_type_and_schema()
    return [block.get_block_type_slug() for block in kinds]
