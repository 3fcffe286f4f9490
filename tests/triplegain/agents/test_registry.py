"""A registered analysis agent runs in every cycle, is stored with it, and reaches the voting models: the
whole of what adding an agent takes is its module, one registry entry and its tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from triplegain.agents import registry
from triplegain.agents.llm_decision import decision_prompt
from triplegain.agents.registry import AnalysisAgent, agent_named
from triplegain.cycle_types import fresh_account
from triplegain.market import ReplaySource
from triplegain.models.analysis import AgentReport, RegimeAssessment, TechnicalReport
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings, load_settings
from triplegain.storage import unit_of_work
from triplegain.storage.cycles import CycleRecord, save_cycle
from triplegain.storage.tables import AgentOutputRow

AT = datetime(2024, 6, 30, 20, tzinfo=UTC)


class VolumeCheck(AgentReport):
    """A test agent's report."""

    volume_ratio: float


def check_volume(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> VolumeCheck:
    ratio = technical.indicators.volume_ratio or 1.0
    return VolumeCheck(
        agent_name="volume_check",
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        confidence=min(1.0, ratio / 2),
        model_used="offline",
        volume_ratio=ratio,
    )


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> AnalysisAgent:
    agent = AnalysisAgent("volume_check", check_volume)
    monkeypatch.setattr(registry, "ANALYSIS_AGENTS", (agent,))
    return agent


def test_a_registered_agent_reports_for_every_symbol_of_a_cycle(registered: AnalysisAgent) -> None:
    from triplegain.cycle import CyclePlan, PlainSteps, assemble_cycle, cycle_id_for

    settings = load_settings()
    plan = CyclePlan(cycle_id_for(AT), AT, AT, fresh_account(settings))

    cycle = assemble_cycle(plan, PlainSteps(ReplaySource(), settings), settings)

    assert cycle.report.status == "completed" and agent_named("volume_check") is registered
    assert [sorted(a.reports) for a in cycle.analyses] == [["volume_check"], ["volume_check"]]
    assert isinstance(cycle.analyses[0].reports["volume_check"], VolumeCheck)


def test_its_report_is_stored_with_the_cycle(registered: AnalysisAgent, engine: Engine) -> None:
    from triplegain.coordinator import coordinate
    from triplegain.cycle import analyze_symbol, build_report, cycle_id_for
    from triplegain.cycle_types import CoordinationInput

    settings = load_settings()
    account = fresh_account(settings)
    analyses = [analyze_symbol(ReplaySource(), s, AT, None, settings) for s in settings.market.symbols]
    result = coordinate(CoordinationInput(cycle_id_for(AT), AT, account, analyses), settings)
    report = build_report(cycle_id_for(AT), AT, AT, analyses, result)

    with unit_of_work(engine) as s:
        save_cycle(s, CycleRecord(report, analyses, result, account))
    with unit_of_work(engine) as s:
        rows = s.scalars(select(AgentOutputRow).where(AgentOutputRow.agent_name == "volume_check")).all()

    assert sorted(r.symbol for r in rows) == ["BTC/USDT", "XRP/USDT"]
    assert all("volume_ratio" in r.output and r.model_used == "offline" for r in rows)


def test_the_voting_models_see_it_under_its_name(registered: AnalysisAgent) -> None:
    from triplegain.cycle import analyze_symbol

    settings = load_settings()
    a = analyze_symbol(ReplaySource(), "BTC/USDT", AT, None, settings)

    prompt = decision_prompt(a.snapshot, a.technical, a.regime, settings, None, a.reports)  # type: ignore[arg-type]

    assert '"volume_check"' in prompt.user and '"volume_ratio"' in prompt.user


def test_an_unregistered_name_is_a_clear_error(registered: AnalysisAgent) -> None:
    with pytest.raises(KeyError, match=r"no analysis agent 'sizing'.*registered: \['volume_check'\]"):
        agent_named("sizing")


def test_without_registered_agents_a_cycle_has_no_extra_reports() -> None:
    settings = load_settings()
    from triplegain.cycle import analyze_symbol

    assert analyze_symbol(ReplaySource(), "BTC/USDT", AT, None, settings).reports == {}
