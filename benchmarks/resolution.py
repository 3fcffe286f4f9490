"""Conflict-resolution latency with a fast, slow or hanging primary model, with and without hedging.

The real SDK clients talk to the local fake LLM server (tests/fakes/llm_server.py); the fallback answers
in 0.2 s. Each scenario resolves one conflict N times through the domain's `resolve` (the gateway asks the
providers directly, without Prefect tasks: the ask-llm task adds its own overhead, see the closing note)
and prints p50/p99 latency and who decided. Budget: the reference's 10 s; hedging starts the fallback at
`hedge_after_share` of it (the default, 0.2: 2 s; the previous default 0.5 is shown beside it for
comparison), "no hedging" waits for the primary to fail or the budget. Target (issue 12): a hanging
primary is answered by the fallback within 3 s with the default.

Usage: python benchmarks/resolution.py [--runs N] [--hedge SHARE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.llm_server import FakeLLMServer, Step
from triplegain.llm.adapters import preload_sdks
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.models.conflicts import Conflict, ConflictType
from triplegain.resolution import AGENT, ResolutionAnswer, resolve
from triplegain.settings import ConflictSettings

CONFLICT = Conflict(
    type=ConflictType.CHOPPY_REGIME,
    symbol="BTC/USDT",
    agents_involved=["regime_detection", "trading_decision"],
    description="BUY in a choppy regime",
    fallback="abort",
)
ANSWER = json.dumps({"decisions": [{"symbol": "BTC/USDT", "action": "wait", "confidence": 0.7}]})
SCENARIOS = {"primary 0.2 s": 0.2, "primary 3 s": 3.0, "primary hangs": 60.0}


async def one(chain: list[ProviderConfig], settings: ConflictSettings) -> tuple[float, str]:
    gateway = LLMGateway(
        ProviderBreakers(BreakerPolicy(failure_threshold=10_000)), Budget(Decimal(100), Decimal(100))
    )

    async def ask(config: ProviderConfig, prompt: Prompt) -> Answer[ResolutionAnswer]:
        return await gateway.ask(AGENT, [config], prompt, ResolutionAnswer)

    start = time.perf_counter()
    [resolution] = await resolve([CONFLICT], {}, chain, ask, settings)
    return time.perf_counter() - start, resolution.decided_by


def run_scenario(
    server: FakeLLMServer, delay: float, hedge: float, runs: int
) -> tuple[list[float], Counter[str]]:
    chain = [
        server.openai_provider("primary", model="primary", timeout_seconds=30),
        server.anthropic_provider("fallback", model="fallback", timeout_seconds=30),
    ]
    server.responder = lambda body: Step(text=ANSWER, delay=delay if body.get("model") == "primary" else 0.2)
    settings = ConflictSettings(resolution_budget_seconds=10, hedge_after_share=hedge)
    latencies, deciders = [], Counter[str]()
    for _ in range(runs):
        seconds, decided_by = asyncio.run(one(chain, settings))
        latencies.append(seconds)
        deciders[decided_by] += 1
    return latencies, deciders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per fast scenario (slow ones run fewer)")
    parser.add_argument(
        "--hedge",
        type=float,
        default=ConflictSettings().hedge_after_share,
        help="hedge_after_share to measure",
    )
    args = parser.parse_args()
    with FakeLLMServer() as server:
        preload_sdks([server.openai_provider(), server.anthropic_provider()])
        print(f"{'scenario':<16} {'hedging':<14} {'runs':>4} {'p50 s':>7} {'p99 s':>7}  decided by")
        for name, delay in SCENARIOS.items():
            runs = args.runs if delay < 1 else max(2, args.runs // 3)
            for label, hedge in (
                (f"at {args.hedge:g} x 10 s", args.hedge),
                ("at 0.5 x 10 s", 0.5),
                ("none", 1.0),
            ):
                latencies, deciders = run_scenario(server, delay, hedge, runs)
                p50 = statistics.median(latencies)
                p99 = sorted(latencies)[min(len(latencies) - 1, round(0.99 * len(latencies) + 0.5) - 1)]
                who = ", ".join(f"{k} x{v}" for k, v in deciders.items())
                print(f"{name:<16} {label:<14} {runs:>4} {p50:7.2f} {p99:7.2f}  {who}")


if __name__ == "__main__":
    main()
