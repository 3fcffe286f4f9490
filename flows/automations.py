"""Alerts the Prefect way: automations on the Prefect server that notify someone when the account halts, a
circuit breaker trips, the system degrades, a run crashes, or a live account's reconciliation stops trading
or meets something URGENT.

`install_automations` saves one notification block (a webhook, or a Slack incoming webhook) and creates,
or updates in place, one automation per alert; running it again changes nothing but what was asked. The
server's automation services send the notifications, so they arrive whether the event came from a served
flow, a worker or `triplegain halt` on a laptop.

    from flows.automations import install_automations
    install_automations(webhook_url="https://alerts.example.com/triplegain")

Each notification names the event, the resource, and who, why, from and to (the event's resource labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from flows.settings import prefect_api_url
from triplegain.control import CIRCUIT_BREAKER_ACTOR
from triplegain.errors import ConfigError, ConfigProblem

BLOCK_NAME = "triplegain-alerts"
FLOWS = ["trading-cycle", "market-watch", "portfolio-check", "dca-rebalance", "sentiment-refresh", "backtest"]
BODY = (
    "{{ event.event }} at {{ event.occurred }}\n"
    "{{ event.resource.get('prefect.resource.name', event.resource.id) }}: "
    "{{ event.resource.get('triplegain.from', '') }} -> {{ event.resource.get('triplegain.to', '') }} "
    "by {{ event.resource.get('triplegain.actor', '') }}: {{ event.resource.get('triplegain.reason', '') }}"
)


@dataclass(frozen=True)
class Alert:
    """One automation: its name, what it says, the events it reacts to and on which resources."""

    name: str
    subject: str
    events: frozenset[str]
    match: dict[str, str | list[str]]
    match_related: dict[str, str | list[str]] | None = None

    def automation(self, block_id: UUID) -> Automation:
        trigger = EventTrigger(
            expect=set(self.events),
            match=self.match,  # type: ignore[arg-type]
            match_related=self.match_related or {},  # type: ignore[arg-type]
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        )
        notify = SendNotification(block_document_id=block_id, subject=self.subject, body=BODY)
        return Automation(
            name=self.name,
            description=f"{self.subject} (installed by `triplegain automations install`)",
            enabled=True,
            trigger=trigger,
            actions=[notify],
        )


ALERTS = [
    Alert(
        "triplegain-halted",
        "TripleGain halted: no trading cycle runs until a confirmed resume",
        frozenset({"triplegain.coordinator.halted"}),
        {"prefect.resource.id": "triplegain.coordinator"},
    ),
    Alert(
        "triplegain-breaker-tripped",
        "TripleGain circuit breaker tripped",
        frozenset({"triplegain.coordinator.paused", "triplegain.coordinator.halted"}),
        {"prefect.resource.id": "triplegain.coordinator", "triplegain.actor": CIRCUIT_BREAKER_ACTOR},
    ),
    Alert(
        "triplegain-degraded",
        "TripleGain degraded",
        frozenset({"triplegain.degradation.increased"}),
        {"prefect.resource.id": "triplegain.degradation"},
    ),
    Alert(
        "triplegain-reconciliation-failed",
        "TripleGain live account: reconciliation found what it cannot explain, trading stopped",
        frozenset({"triplegain.reconciliation.failed"}),
        {"prefect.resource.id": "triplegain.reconciliation"},
    ),
    Alert(
        "triplegain-urgent",
        "TripleGain URGENT: a live position needs you (unprotected, or sold twice)",
        frozenset({"triplegain.risk.urgent"}),
        {"prefect.resource.id": "triplegain.risk"},
    ),
    Alert(
        "triplegain-run-crashed",
        "TripleGain run crashed",
        frozenset({"prefect.flow-run.Crashed"}),
        {"prefect.resource.id": "prefect.flow-run.*"},
        {"prefect.resource.role": "flow", "prefect.resource.name": FLOWS},
    ),
]


def install_automations(webhook_url: str | None = None, slack_url: str | None = None) -> list[str]:
    """Save the notification block and create or update every alert's automation; returns their names.

    Exactly one of `webhook_url` (any HTTP endpoint; a JSON POST with subject and body) or `slack_url` (a
    Slack incoming webhook). Needs a Prefect API: automations live on the server (ConfigError without one).
    """
    if (webhook_url is None) == (slack_url is None):
        raise ConfigError([ConfigProblem("--webhook / --slack", "<both or neither>", "exactly one of them")])
    if prefect_api_url() is None:
        raise ConfigError(
            [ConfigProblem("PREFECT_API_URL", "<unset>", "a Prefect server (automations live there)")]
        )
    block: CustomWebhookNotificationBlock | SlackWebhook
    if webhook_url is not None:
        _check_url(webhook_url, "--webhook")
        block = CustomWebhookNotificationBlock(
            name=BLOCK_NAME,
            url=webhook_url,
            method="POST",
            json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"},
        )
    else:
        assert slack_url is not None
        _check_url(slack_url, "--slack")
        block = SlackWebhook(url=slack_url)  # type: ignore[arg-type]
    block_id = block.save(BLOCK_NAME, overwrite=True)
    for alert in ALERTS:
        wanted = alert.automation(block_id)
        try:
            existing = Automation.read(name=alert.name)
        except ValueError:  # not installed yet
            wanted.create()
            continue
        wanted.id = existing.id
        wanted.update()
    return [alert.name for alert in ALERTS]


def _check_url(url: str, option: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError([ConfigProblem(option, url, "an http:// or https:// URL")])
