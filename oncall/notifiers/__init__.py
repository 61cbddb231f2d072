"""Notifiers, chosen by ``NETFLIX_ALERT_NOTIFIERS``; their secrets come from the settings (environment)."""

from __future__ import annotations

from core.settings import Settings
from oncall.notifiers.alert_log import AlertLogNotifier
from oncall.notifiers.base import DeliveryFailed, Notification, Notifier
from oncall.notifiers.pagerduty import PagerDutyNotifier
from oncall.notifiers.slack import SlackBotNotifier, SlackWebhookNotifier
from oncall.notifiers.webhook import AlertmanagerWebhookNotifier

__all__ = ["DeliveryFailed", "Notification", "Notifier", "build_notifiers"]


def _secret(value: object) -> str:
    return value.get_secret_value().strip() if value is not None else ""  # type: ignore[attr-defined]


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """One notifier per configured name (``Settings`` already refused a name without its secret)."""
    built: dict[str, Notifier] = {}
    for name in settings.notifier_names:
        if name == "log":
            built[name] = AlertLogNotifier(settings.resolved_alert_log_file)
        elif name == "pagerduty":
            built[name] = PagerDutyNotifier(
                settings.pagerduty_events_url, _secret(settings.pagerduty_routing_key)
            )
        elif name == "slack" and _secret(settings.slack_bot_token):
            built[name] = SlackBotNotifier(
                settings.slack_api_url, _secret(settings.slack_bot_token), str(settings.slack_channel)
            )
        elif name == "slack":
            built[name] = SlackWebhookNotifier(_secret(settings.slack_webhook_url))
        elif name == "webhook":
            token = _secret(settings.alert_webhook_token) or None
            built[name] = AlertmanagerWebhookNotifier(_secret(settings.alert_webhook_url), token)
    return built
