"""End to end on a real Prefect server: `triplegain automations install --webhook` creates the alerts
(twice: nothing doubles), `triplegain halt` sends its event at once, and the server's automation posts the
notification to a receiver on 127.0.0.1, naming who, why, from and to."""

from __future__ import annotations

import json
import subprocess
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
            "triplegain-run-crashed",
        ], names
        assert "triplegain-halted" in installed.stdout

        cli("halt", "--reason", "fire drill", "--by", "ops")

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
    finally:
        client.close()
        stop(server)
