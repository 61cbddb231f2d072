"""A local HTTP server on 127.0.0.1 that stands in for PagerDuty, Slack and an Alertmanager receiver.

It answers the way the real services do (PagerDuty Events API v2: ``202 {"status": "success", ...}`` or
``400`` with ``errors``; Slack ``chat.postMessage``: ``{"ok": true, "ts": ...}`` or ``{"ok": false,
"error": ...}``; incoming webhooks: ``ok``), validates each request against the documented shape, and
records everything it got, with the time it arrived. ``fail_until`` makes it answer 500 for a while.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PD_PATH = "/v2/enqueue"
SLACK_API = "/api"
SLACK_WEBHOOK_PATH = "/services/T000/B000/secret-webhook-token"
ALERTMANAGER_PATH = "/alertmanager"
SLACK_TOKEN = "xoxb-test-token"
PD_SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: Any = None


@dataclass
class AlertReceiver:
    """Start with ``with AlertReceiver() as receiver``; ``receiver.url`` is its base URL."""

    fail_until: float = 0.0  # answer 500 to everything before this time
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> AlertReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = receiver.answer(self.path, dict(self.headers), raw)
                payload = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "text/plain" if isinstance(answer, str) else "application/json"
                )
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- answers ----------------------------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        if time.time() < self.fail_until:
            status, answer = 500, {"status": "error", "message": "internal server error (simulated)"}
        elif path == PD_PATH:
            status, answer = self._pagerduty(body)
        elif path == f"{SLACK_API}/chat.postMessage":
            status, answer = self._slack_api(headers, body)
        elif path == SLACK_WEBHOOK_PATH:
            status, answer = (200, "ok") if isinstance(body, dict) and body.get("text") else (400, "no_text")
        elif path == ALERTMANAGER_PATH:
            status, answer = self._alertmanager(body)
        else:
            status, answer = 404, {"error": f"unknown path {path}"}
        with self._lock:
            self.received.append(Received(time.time(), path, headers, body, status, answer))
        return status, answer

    def _pagerduty(self, body: Any) -> tuple[int, Any]:
        errors = pagerduty_errors(body)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return 202, {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}

    def _slack_api(self, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}
        if (
            not isinstance(body, dict)
            or not body.get("channel")
            or not (body.get("text") or body.get("blocks"))
        ):
            return 200, {"ok": False, "error": "no_text"}
        with self._lock:
            self._ts += 1
            ts = f"1700000000.{self._ts:06d}"
        return 200, {"ok": True, "channel": "C0TEST", "ts": ts, "message": {"text": body.get("text")}}

    def _alertmanager(self, body: Any) -> tuple[int, Any]:
        ok = (
            isinstance(body, dict)
            and body.get("version") == "4"
            and body.get("status") in ("firing", "resolved")
            and all(
                {"status", "labels", "annotations", "startsAt", "endsAt"} <= set(a) for a in body["alerts"]
            )
        )
        return (200, {"status": "ok"}) if ok else (400, {"error": "not an Alertmanager webhook payload"})

    # -- what was received (accepted requests only unless said otherwise) ------------------------------
    def accepted(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path and r.status < 300]

    def pagerduty(self, action: str | None = None, dedup_key: str | None = None) -> list[Received]:
        return [
            r
            for r in self.accepted(PD_PATH)
            if (action is None or r.body["event_action"] == action)
            and (dedup_key is None or r.body["dedup_key"] == dedup_key)
        ]

    def slack(self) -> list[Received]:
        return self.accepted(f"{SLACK_API}/chat.postMessage")

    def alertmanager(self) -> list[Received]:
        return self.accepted(ALERTMANAGER_PATH)

    def attempts(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


def pagerduty_errors(body: Any) -> list[str]:
    """What PagerDuty's Events API v2 would reject in ``body`` (its documented required fields)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    errors = []
    if not body.get("routing_key"):
        errors.append("routing_key is required")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("event_action must be trigger, acknowledge or resolve")
    if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        errors.append("dedup_key is required to acknowledge or resolve")
    if len(str(body.get("dedup_key", ""))) > 255:
        errors.append("dedup_key is longer than 255 characters")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "payload is required to trigger"]
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                errors.append(f"payload.{key} is required")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("payload.summary is longer than 1024 characters")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("payload.severity must be critical, error, warning or info")
        for link in body.get("links", []):
            if not link.get("href"):
                errors.append("links[].href is required")
    return errors


def receiver_env(receiver: AlertReceiver, notifiers: str = "log,pagerduty,slack,webhook") -> dict[str, str]:
    """Settings that point every notifier at ``receiver`` (Slack through the bot token, so threaded)."""
    return {
        "NETFLIX_ALERT_NOTIFIERS": notifiers,
        "NETFLIX_PAGERDUTY_ROUTING_KEY": "R0UTINGKEY0123456789abcdefABCDEF",
        "NETFLIX_PAGERDUTY_EVENTS_URL": receiver.url + PD_PATH,
        "NETFLIX_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "NETFLIX_SLACK_CHANNEL": "#netflix-oncall",
        "NETFLIX_SLACK_API_URL": receiver.url + SLACK_API,
        "NETFLIX_ALERT_WEBHOOK_URL": receiver.url + ALERTMANAGER_PATH,
        "NETFLIX_ALERT_SOURCE": "netflix-lambda@test",
    }
