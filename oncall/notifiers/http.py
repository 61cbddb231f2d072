"""One JSON POST, with the failure classified for the outbox (retry soon, retry later, what to fix).

Plain ``urllib``: the Events API, Slack and Alertmanager webhooks are single JSON POSTs, and the retries
with backoff belong to the outbox (``oncall.dispatch``), which survives restarts; an HTTP client's own
retry loop would not. Error messages name the destination by host only: a Slack webhook's or an alert
webhook's URL is itself a secret.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from oncall.notifiers.base import DeliveryFailed

TIMEOUT_S = 10.0
USER_AGENT = "netflix-lambda-oncall/1"


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url.split("?", 1)[0][:40]


def post_json(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout_s: float = TIMEOUT_S
) -> tuple[int, str]:
    """POST ``body``; returns (status, response text) on 2xx, else raises :class:`DeliveryFailed`."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        text = _redacted(exc.read().decode(errors="replace"), url)[:300]
        if exc.code == 429:
            retry_after = _seconds(exc.headers.get("Retry-After"))
            raise DeliveryFailed(f"{host_of(url)} rate-limited us (HTTP 429)", retry_after) from None
        permanent = 400 <= exc.code < 500
        raise DeliveryFailed(
            f"{host_of(url)} answered HTTP {exc.code}: {text}", permanent=permanent
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"cannot reach {host_of(url)}: {reason}") from None


def _redacted(text: str, url: str) -> str:
    """The answer without the URL's path or query, which some servers echo back (they hold tokens)."""
    parts = urlsplit(url)
    for secret in (parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return text


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None
