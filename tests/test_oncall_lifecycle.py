"""The incident lifecycle on the real store and real notifiers, against a local HTTP receiver that speaks
PagerDuty Events v2, Slack's Web API and Alertmanager's webhook: one page per incident, optional
reminders, resolve after N healthy samples, state across restarts, delivery retried until delivered or
resolved, never twice even with two drainers."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from core.settings import Settings
from oncall.alerts import Links
from oncall.definitions import Severity
from oncall.dispatch import PERMANENT_RETRY_S, Dispatcher, backoff_s
from oncall.incidents import Alert, IncidentBook
from oncall.notifiers import build_notifiers
from oncall.notifiers.alert_log import AlertLogFollower
from oncall.notifiers.base import DeliveryFailed
from oncall.notifiers.http import post_json
from tests.alert_receiver import PD_PATH, SLACK_WEBHOOK_PATH, AlertReceiver, receiver_env

NOTIFIERS = ["log", "pagerduty", "slack", "webhook"]


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as running:
        yield running


def _settings(tmp_path: Path, receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in receiver_env(receiver).items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None, data_dir=tmp_path / "data")


def _book(settings: Settings) -> IncidentBook:
    return IncidentBook(
        settings.oncall_dir / "incidents.sqlite", settings.notifier_names, "netflix-lambda@test"
    )


@dataclass
class Wired:
    """Settings routed to the receiver, the incident store and a dispatcher over the real notifiers."""

    settings: Settings
    book: IncidentBook
    dispatcher: Dispatcher


@pytest.fixture
def wired(tmp_path: Path, receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch) -> Wired:
    settings = _settings(tmp_path, receiver, monkeypatch)
    book = _book(settings)
    return Wired(settings, book, Dispatcher(book, build_notifiers(settings), "netflix-lambda@test"))


def _alert(value: float, key: str = "speed_freshness:page") -> Alert:
    links = Links.from_settings(Settings(_env_file=None))
    return Alert(
        key=key,
        name=key.split(":")[0],
        severity=Severity.PAGE,
        title="Speed-layer freshness",
        summary=f"Speed-layer freshness: the oldest unreflected event is {value:.0f} s old (objective 60 s).",
        details={"value": value, "lag_messages": 1234, "headline": f"oldest is {value:.0f} s old"},
        runbook_url=links.runbook("stale-realtime-data"),
        links=links.dagster("assets/slo_status", "Dagster: slo_status"),
    )


def test_one_page_per_incident_threaded_resolve_after_n_healthy_samples(
    wired: Wired, receiver: AlertReceiver
) -> None:
    settings, book, dispatcher = wired.settings, wired.book, wired.dispatcher
    now = time.time() - 120  # sample times in the past: every queued notification is due at once
    for i in range(5):  # the breach persists over 5 samples: one incident, one page
        incident, opened = book.raise_alert(_alert(70.0 + 5 * i), now + 5 * i)
        assert opened is (i == 0)
        dispatcher.drain()
    # flapping: healthy, healthy, bad again (the streak restarts), then 3 healthy samples resolve it
    assert book.heal(incident.key, now + 30, 3, "healthy") is None
    assert book.heal(incident.key, now + 35, 3, "healthy") is None
    book.raise_alert(_alert(61.0), now + 40)
    for t in (45, 50):
        assert book.heal(incident.key, now + t, 3, "healthy") is None
    resolved = book.heal(incident.key, now + 55, 3, "caught up: 0 s behind (3 healthy samples in a row)")
    assert resolved is not None and resolved.id == incident.id and not resolved.is_open
    dispatcher.drain()

    triggers, resolves = receiver.pagerduty("trigger"), receiver.pagerduty("resolve")
    assert len(triggers) == 1 and len(resolves) == 1
    trigger = triggers[0].body
    assert trigger["dedup_key"] == resolves[0].body["dedup_key"] == "netflix-lambda@test/speed_freshness:page"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["lag_messages"] == 1234
    runbook = trigger["links"][0]["href"]
    assert Path(unquote(urlsplit(runbook).path)).name == "stale-realtime-data.md"
    assert Path(unquote(urlsplit(runbook).path)).exists()
    slack = receiver.slack()
    assert len(slack) == 2 and "thread_ts" not in slack[0].body
    assert slack[1].body["thread_ts"] == "1700000000.000001" and "RESOLVED" in slack[1].body["text"]
    assert all(runbook in json.dumps(m.body) for m in slack)
    manager = receiver.alertmanager()
    assert [m.body["status"] for m in manager] == ["firing", "resolved"]
    assert manager[0].body["alerts"][0]["annotations"]["runbook_url"] == runbook
    assert manager[1].body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    entries = AlertLogFollower(settings.resolved_alert_log_file, from_start=True).new_entries()
    assert [e["action"] for e in entries] == ["trigger", "resolve"]
    assert entries[0]["runbook"] == runbook and "PAGE [speed_freshness]" in entries[0]["line"]


def test_a_reminder_only_after_the_configured_time(wired: Wired, receiver: AlertReceiver) -> None:
    book, dispatcher = wired.book, wired.dispatcher
    now = time.time() - 1000
    book.raise_alert(_alert(70), now, reminder_after_s=600)
    book.raise_alert(_alert(80), now + 300, reminder_after_s=600)
    dispatcher.drain()
    assert len(receiver.pagerduty("trigger")) == 1
    book.raise_alert(_alert(90), now + 601, reminder_after_s=600)
    book.raise_alert(_alert(95), now + 700, reminder_after_s=600)
    dispatcher.drain()
    triggers = receiver.pagerduty("trigger")  # PagerDuty de-duplicates a re-trigger on the same key
    assert len(triggers) == 2 and triggers[0].body["dedup_key"] == triggers[1].body["dedup_key"]
    slack = receiver.slack()
    assert len(slack) == 2 and slack[1].body["thread_ts"] == slack[0].body.get(
        "thread_ts", "1700000000.000001"
    )
    assert "STILL OPEN" in slack[1].body["text"]


def test_a_restarted_store_neither_pages_twice_nor_forgets_to_resolve(
    tmp_path: Path, receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, receiver, monkeypatch)
    first = _book(settings)
    first.raise_alert(_alert(70), time.time())
    Dispatcher(first, build_notifiers(settings), "a").drain()
    first.heal("speed_freshness:page", time.time(), 3, "healthy")
    first.close()
    again = _book(settings)  # a new process, the same file
    incident, opened = again.raise_alert(_alert(75), time.time())
    assert not opened and incident.healthy_streak == 0
    for _ in range(3):
        again.heal("speed_freshness:page", time.time(), 3, "healthy again")
    Dispatcher(again, build_notifiers(settings), "b").drain()
    assert len(receiver.pagerduty("trigger")) == 1 and len(receiver.pagerduty("resolve")) == 1
    assert len(receiver.slack()) == 2 and receiver.slack()[1].body["thread_ts"]


def test_delivery_is_retried_with_backoff_until_the_destination_answers(
    tmp_path: Path, receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, receiver, monkeypatch)
    book = _book(settings)
    receiver.fail_until = time.time() + 4.0
    stop = threading.Event()
    dispatcher = Dispatcher(book, build_notifiers(settings), "netflix-lambda@test")
    with caplog.at_level(logging.ERROR, logger="oncall.dispatch"):
        dispatcher.start(stop)
        book.raise_alert(_alert(70), time.time())
        dispatcher.wake()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not receiver.pagerduty("trigger"):
            time.sleep(0.2)
        time.sleep(1.0)  # a duplicate would arrive now
        stop.set()
    attempts = receiver.attempts(PD_PATH)
    failed = [a for a in attempts if a.status == 500]
    assert len(failed) >= 2 and len(receiver.pagerduty("trigger")) == 1, [a.status for a in attempts]
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[1] >= gaps[0] * 1.5, f"no backoff between attempts: {gaps}"
    assert receiver.pagerduty("trigger")[0].at >= receiver.fail_until
    said = [r.message for r in caplog.records]
    assert any(
        "could not deliver the trigger of page [speed_freshness]" in m and "Retrying in" in m for m in said
    )
    assert book.pending() == []


def test_an_undelivered_page_is_dropped_when_its_incident_resolves(
    wired: Wired, receiver: AlertReceiver
) -> None:
    settings, book, dispatcher = wired.settings, wired.book, wired.dispatcher
    receiver.fail_until = time.time() + 3600
    book.raise_alert(_alert(70), time.time())
    dispatcher.drain()
    book.resolve("speed_freshness:page", time.time(), "healthy before anyone could be told")
    receiver.fail_until = 0.0
    dispatcher.drain()
    time.sleep(1.2)  # past the first backoff
    dispatcher.drain()
    assert receiver.pagerduty() == [] and receiver.slack() == [] and receiver.alertmanager() == []
    assert book.pending() == []
    entries = AlertLogFollower(settings.resolved_alert_log_file, from_start=True).new_entries()
    assert [e["action"] for e in entries] == ["trigger", "resolve"], "the local log got both"


def test_two_drainers_never_deliver_the_same_notification_twice(
    tmp_path: Path, receiver: AlertReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, receiver, monkeypatch)
    for i in range(15):
        _book(settings).raise_alert(_alert(70, key=f"event_{i}"), time.time())
    stop = threading.Event()
    for owner in ("monitor", "watchdog"):
        Dispatcher(_book(settings), build_notifiers(settings), owner).start(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(receiver.pagerduty("trigger")) < 15:
        time.sleep(0.2)
    time.sleep(1.5)
    stop.set()
    keys = [r.body["dedup_key"] for r in receiver.pagerduty("trigger")]
    assert len(keys) == 15 == len(set(keys))
    assert len(receiver.slack()) == 15


def test_processes_racing_on_one_alert_open_one_incident(tmp_path: Path) -> None:
    """Two processes raising the same alert at once (the monitor and a sensor) still page once."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from oncall.definitions import Severity\n"
        "from oncall.incidents import Alert, IncidentBook\n"
        "book = IncidentBook(Path(sys.argv[1]), ['log', 'pagerduty'], 'race')\n"
        "alert = Alert('broker_unreachable', 'broker_unreachable', Severity.PAGE, 't', 's', {}, 'r')\n"
        "print(sum(book.raise_alert(alert, time.time())[1] for _ in range(40)))\n"
    )
    store = tmp_path / "incidents.sqlite"
    IncidentBook(store, [], "race")  # schema first
    racers = [
        subprocess.Popen([sys.executable, "-c", script, str(store)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    opened = [int(p.communicate(timeout=120)[0].strip()) for p in racers]
    assert sum(opened) == 1
    book = IncidentBook(store, ["log", "pagerduty"], "race")
    assert len(book.open_incidents()) == 1
    assert sorted(d["notifier"] for d in book.pending()) == ["log", "pagerduty"]


def test_failures_are_classified_and_secrets_stay_out_of_messages(receiver: AlertReceiver) -> None:
    webhook = receiver.url + SLACK_WEBHOOK_PATH.replace("secret-webhook-token", "other-secret-token")
    with pytest.raises(DeliveryFailed) as refused:
        post_json(webhook, {"text": "x"})  # unknown path: 404, a configuration problem
    assert refused.value.permanent and "other-secret-token" not in str(refused.value)
    assert backoff_s(1, refused.value) == PERMANENT_RETRY_S
    with pytest.raises(DeliveryFailed) as down:
        post_json("http://127.0.0.1:9/v2/enqueue", {"x": 1}, timeout_s=2)
    assert not down.value.permanent and "cannot reach 127.0.0.1:9" in str(down.value)
    assert [backoff_s(n, down.value) for n in (1, 2, 3, 6, 10)] == [1, 2, 4, 30, 30]
    assert backoff_s(1, DeliveryFailed("429", retry_after_s=12)) == 12
    receiver.fail_until = time.time() + 60
    with pytest.raises(DeliveryFailed, match="HTTP 500") as server_error:
        post_json(receiver.url + PD_PATH, {"routing_key": "k"})
    assert not server_error.value.permanent
