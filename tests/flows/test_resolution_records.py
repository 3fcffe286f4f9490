"""Every request the conflict resolution sends becomes an llm_calls row, whatever becomes of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flows.trading_cycle import trading_cycle
from tests.fakes.llm_server import FakeLLMServer, Recorded, Step
from tests.flows.test_trading_cycle_llm import HOLD, XRP_BUY, llm_config
from triplegain.storage import create_db_engine, unit_of_work
from triplegain.storage.tables import ConflictResolutionRow, LLMCallRow

ANSWER = {"decisions": [{"symbol": "XRP/USDT", "action": "wait", "confidence": 0.7, "reasoning": "choppy"}]}


def voters_then(resolver: dict[str, Step]) -> Any:
    """Voters BUY XRP in its choppy hour (a conflict), HOLD BTC; the resolution prompt gets `resolver`'s
    step for the model asked."""

    def respond(body: dict[str, Any]) -> Step:
        text = Recorded("", {}, body).prompt_text
        if "CONFLICTS DETECTED" in text:
            return resolver[body["model"]]
        if '"symbol": "XRP/USDT"' in text:
            return Step(text=json.dumps(XRP_BUY))
        return Step(text=json.dumps(HOLD))

    return respond


def rows(url: str) -> tuple[list[LLMCallRow], list[ConflictResolutionRow]]:
    engine = create_db_engine(url)
    with unit_of_work(engine) as s:
        calls = [c for c in s.scalars(select(LLMCallRow)) if c.agent == "conflict_resolution"]
        resolutions = list(s.scalars(select(ConflictResolutionRow)))
    engine.dispose()
    return calls, resolutions


@pytest.mark.parametrize("failure", ["429", "500", "hang"])
def test_a_failing_resolver_leaves_a_row_per_request_and_a_resolution(
    failure: str, project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    primary = {
        "429": Step(status=429, headers={"retry-after": "0"}),
        "500": Step(status=500),
        "hang": Step(text=json.dumps(ANSWER), delay=8),
    }[failure]
    server.responder = voters_then({"model-a": primary, "model-b": Step(text=json.dumps(ANSWER), delay=0.5)})
    config = llm_config(tmp_path, server, resolution_chain=["v1", "v2"], retries=1, retry_backoff_seconds=0.1)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=config)

    calls, resolutions = rows(project_db)
    sent = [r for r in server.requests if "CONFLICTS DETECTED" in Recorded("", {}, r.body).prompt_text]
    assert len(calls) == len(sent), [(c.provider, c.outcome) for c in calls]  # every request is a row
    assert [r.symbol for r in resolutions] == ["XRP/USDT"]
    resolution = report.outcome("XRP/USDT").resolution
    assert resolution is not None and resolution.decided_by == "v2"  # the fallback answered
    primary = [c.outcome for c in calls if c.provider == "v1"]
    if failure == "hang":
        # The request the fallback's answer made moot is recorded as cancelled. On a loaded machine the
        # fallback, started 2 s in, can answer before the primary's request has left: then there is none.
        reached = [r for r in sent if r.body["model"] == "model-a"]
        assert primary == ["cancelled"] * len(reached) and len(reached) <= 1
    else:  # the first request failed; its retry, if it went out before the fallback won, failed too (on a
        # loaded machine the fallback, started 2 s in, can win before the primary's first request leaves)
        assert set(primary) <= {"unavailable", "cancelled"} and primary[:1] in (
            [],
            ["unavailable"],
            ["cancelled"],
        )
