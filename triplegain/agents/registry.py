"""The analysis agents a cycle runs for each symbol besides its skeleton (technical analysis, regime,
decision), registered once.

Whatever is listed in `ANALYSIS_AGENTS` runs after the regime and before the decision, in the cycle's plain
steps and as a Prefect task of the flow ("analysis-agent", its run named after the agent and symbol);
its report is stored as an `agent_outputs` row with the cycle's, and the voting models see it in their
prompt, under the agent's name. A new agent therefore touches its module (a pure function returning an
`AgentReport` subclass, and its prompt if it asks a model), one entry here, and its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from triplegain.models.analysis import AgentReport, RegimeAssessment, TechnicalReport
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings

Analyze = Callable[[MarketSnapshot, TechnicalReport, RegimeAssessment, Settings], AgentReport]


@dataclass(frozen=True)
class AnalysisAgent:
    """One registered agent: its name (the report's `agent_name`) and its pure analysis step."""

    name: str
    analyze: Analyze


ANALYSIS_AGENTS: tuple[AnalysisAgent, ...] = ()


def agent_named(name: str) -> AnalysisAgent:
    """The registered agent called `name` (KeyError naming the registered ones otherwise)."""
    for agent in ANALYSIS_AGENTS:
        if agent.name == name:
            return agent
    raise KeyError(f"no analysis agent {name!r} registered; registered: {[a.name for a in ANALYSIS_AGENTS]}")


def run_registered(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> dict[str, AgentReport]:
    """Every registered agent's report for one symbol, in registration order."""
    return {a.name: a.analyze(snapshot, technical, regime, settings) for a in ANALYSIS_AGENTS}
