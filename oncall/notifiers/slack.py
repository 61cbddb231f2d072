"""Slack: one message on trigger, one on resolve, threaded under the page when a bot token is set.

Two ways in, by settings: an incoming webhook (simplest; Slack returns no message id, so nothing can be
threaded) or the Web API's ``chat.postMessage`` with a bot token, which returns the message's ``ts``; the
resolve and any reminder are posted in that thread (the resolve also broadcast to the channel). The same
JSON ``dagster-slack``'s client would send, over plain HTTP (``slack_sdk`` is not a dependency).
"""

from __future__ import annotations

import json
from typing import Any

from oncall.definitions import Severity
from oncall.incidents import RESOLVE, TRIGGER
from oncall.notifiers.base import DeliveryFailed, Notification
from oncall.notifiers.http import post_json

TRIGGER_EMOJI = {Severity.PAGE: ":rotating_light:", Severity.TICKET: ":warning:"}
RESOLVED_EMOJI = ":white_check_mark:"
# Errors retrying will not fix: the message says which setting to check.
PERMANENT_ERRORS = {
    "invalid_auth", "not_authed", "token_revoked", "account_inactive", "channel_not_found",
    "not_in_channel", "missing_scope", "is_archived",
}  # fmt: skip


def message(note: Notification) -> dict[str, Any]:
    """Text (notifications, fallback) and blocks (the numbers and the runbook link)."""
    incident = note.incident
    emoji = RESOLVED_EMOJI if note.action == RESOLVE else TRIGGER_EMOJI[incident.severity]
    text = f"{emoji} {note.line()}"
    numbers = {
        k: v for k, v in incident.details.items() if not isinstance(v, dict | list) and k != "headline"
    }
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in list(numbers.items())[:10]]
    links = " · ".join(
        f"<{url}|{label}>" for label, url in {"Runbook": incident.runbook_url, **incident.links}.items()
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]
    if fields and note.action != RESOLVE:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{links} · {note.source}"}]})
    return {"text": text, "blocks": blocks}


class SlackWebhookNotifier:
    name = "slack"

    def __init__(self, webhook_url: str) -> None:
        self._url = webhook_url

    def send(self, note: Notification) -> str | None:
        post_json(self._url, message(note))
        return None


class SlackBotNotifier:
    name = "slack"

    def __init__(self, api_url: str, token: str, channel: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.channel = channel
        self._token = token

    def send(self, note: Notification) -> str | None:
        body: dict[str, Any] = {"channel": self.channel, **message(note), "unfurl_links": False}
        if note.action != TRIGGER and note.thread:
            body["thread_ts"] = note.thread
            body["reply_broadcast"] = note.action == RESOLVE
        _, text = post_json(
            f"{self.api_url}/chat.postMessage", body, headers={"Authorization": f"Bearer {self._token}"}
        )
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            raise DeliveryFailed(f"Slack answered something that is not JSON: {text[:200]}") from None
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown error"))
            if error == "ratelimited":
                raise DeliveryFailed("Slack rate-limited us (ratelimited)")
            hint = (
                " (check NETFLIX_SLACK_BOT_TOKEN and NETFLIX_SLACK_CHANNEL)"
                if error in PERMANENT_ERRORS
                else ""
            )
            raise DeliveryFailed(f"Slack refused the message: {error}{hint}", permanent=bool(hint))
        return str(answer.get("ts")) if note.action == TRIGGER else note.thread
