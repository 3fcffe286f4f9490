"""End to end on a real Prefect server: `triplegain automations install --webhook` creates the alerts
(twice: nothing doubles), `triplegain halt` sends its event at once, and the server's automation posts the
notification to a receiver on 127.0.0.1, naming who, why, from and to. A trading-cycle run that crashed and
a degradation increase (sent by the flows' own event task) reach the receiver the same way; a crashed run
of a flow that is not TripleGain's does not."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import PREFECT, TRIPLEGAIN, clean_env, free_port, start, stop, wait_for


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: its URL, and the JSON bodies it was sent."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_halt_reaches_the_webhook_through_a_prefect_automation(
    receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = receiver
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_log = tmp_path / "server.log"
    server = start(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(tmp_path),
        server_log,
    )
    client = httpx.Client(base_url=api, timeout=30)
    env = clean_env(tmp_path, PREFECT_API_URL=api, TRIPLEGAIN_DATABASE_URL=f"sqlite:///{tmp_path / 'tg.db'}")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(TRIPLEGAIN), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        wait_for("the Prefect server", lambda: client.get("/health").status_code == 200, 180, [server_log])
        cli("automations", "install", "--webhook", url)
        installed = cli("automations", "install", "--webhook", url)  # again: updated in place
        automations = client.post("/automations/filter", json={}).json()
        names = sorted(a["name"] for a in automations)
        assert names == [
            "triplegain-breaker-tripped",
            "triplegain-degraded",
            "triplegain-halted",
            "triplegain-reconciliation-failed",
            "triplegain-run-crashed",
            "triplegain-urgent",
        ], names
        assert "triplegain-halted" in installed.stdout

        halting = cli("halt", "--reason", "fire drill", "--by", "ops")
        assert "running -> halted by ops" in halting.stdout
        assert "Still processing" not in halting.stderr  # the event was delivered before the command ended

        def notified() -> list[dict[str, Any]] | None:
            halts = [r for r in received if "halted" in r.get("subject", "")]
            return halts or None

        [note, *_] = wait_for("the halt notification", notified, 120, [server_log])
        assert "triplegain.coordinator.halted" in note["body"]
        assert "running -> halted by ops: fire drill" in note["body"]
        assert not [r for r in received if "breaker" in r.get("subject", "")]  # a person, not a breaker

        def stored() -> list[dict[str, Any]] | None:  # the server persists events in batches
            events = client.post(
                "/events/filter", json={"filter": {"event": {"prefix": ["triplegain.coordinator"]}}}
            ).json()["events"]
            return [e for e in events if e["event"] == "triplegain.coordinator.halted"] or None

        [halted] = wait_for("the halt event in the event feed", stored, 60, [server_log])
        assert halted["resource"]["triplegain.actor"] == "ops"
        assert halted["resource"]["triplegain.reason"] == "fire drill"
        assert {"prefect.resource.id": "triplegain.actor.ops", "prefect.resource.role": "actor"}.items() <= (
            halted["related"][0].items()
        )

        # A crashed run: the server itself emits prefect.flow-run.Crashed when the run's state says so.
        def crash(flow_name: str) -> None:
            flow_id = client.post("/flows/", json={"name": flow_name}).json()["id"]
            run = client.post("/flow_runs/", json={"flow_id": flow_id, "name": f"{flow_name}-x"}).json()
            for state in ({"type": "RUNNING"}, {"type": "CRASHED", "message": "killed by the OOM killer"}):
                set_state = client.post(
                    f"/flow_runs/{run['id']}/set_state", json={"state": state, "force": True}
                )
                assert set_state.status_code in (200, 201), set_state.text

        crash("somebody-elses-flow")
        crash("trading-cycle")

        def crashed() -> list[dict[str, Any]] | None:
            return [r for r in received if "crashed" in r.get("subject", "")] or None

        [crash_note, *others] = wait_for("the crash notification", crashed, 120, [server_log])
        assert "prefect.flow-run.Crashed" in crash_note["body"] and "trading-cycle-x" in crash_note["body"]
        assert not [r for r in others if "somebody-elses-flow" in r.get("body", "")]

        # A degradation increase, sent by the same task the flows use.
        sent = subprocess.run(
            [sys.executable, "-c", DEGRADE], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr

        def degraded() -> list[dict[str, Any]] | None:
            return [r for r in received if "degraded" in r.get("subject", "")] or None

        [degraded_note] = wait_for("the degradation notification", degraded, 120, [server_log])
        assert "triplegain.degradation.increased" in degraded_note["body"]
        assert "normal -> reduced by degradation-monitor: 3 LLM failures" in degraded_note["body"]
    finally:
        client.close()
        stop(server)


DEGRADE = """
from datetime import UTC, datetime
from prefect.events.worker import EventsWorker
from tasks.events import emit_degradation_events
from triplegain.degradation import DegradationChanged
from triplegain.models.enums import DegradationLevel
change = DegradationChanged(
    from_level=DegradationLevel.NORMAL, to_level=DegradationLevel.REDUCED, llm_failures=3,
    api_failures=0, reason="3 LLM failures", at=datetime.now(UTC),
)
emit_degradation_events.fn([change])
EventsWorker.drain_all()
"""
