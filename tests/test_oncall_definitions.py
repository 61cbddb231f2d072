"""Bad input stops the on-call machinery at start-up, naming the key: a malformed SLO file, a notifier
without its secret. Nothing pages with an empty routing key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.settings import InvalidSettings, Settings
from oncall.definitions import DEFAULT_SLO_FILE, KNOWN_EVENTS, Severity, SloFileError, load_slo_book
from oncall.notifiers import build_notifiers
from oncall.notifiers.pagerduty import PagerDutyNotifier

EXE = str(Path(sys.executable).parent / "netflix-lambda")


def _default() -> dict:
    return yaml.safe_load(DEFAULT_SLO_FILE.read_text())


def _write(tmp_path: Path, document: dict | str) -> Settings:
    path = tmp_path / "slos.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return Settings(_env_file=None, data_dir=tmp_path, slo_file=path)


def test_the_project_slo_file_defines_the_issue_s_slos_and_rules() -> None:
    book = load_slo_book(Settings(_env_file=None))
    freshness = book.slos["speed_freshness"]
    assert (freshness.objective_max, freshness.hard_breach) == (60.0, Severity.PAGE)
    assert book.slos["speed_latency"].objective_max == 15.0
    assert book.slos["validation_rate"].objective_min == 0.99
    assert book.slos["input_traffic"].hard_breach is Severity.TICKET
    assert Severity.PAGE not in book.slos["input_traffic"].severities()  # a warning, never a page
    rules = {r.name: r for r in freshness.burn_rules}

    # Google SRE workbook: 14.4x over 1 h and 5 min, 6x over 6 h and 30 min, 1x over 3 d and 6 h.
    def shape(name: str) -> tuple[float, float, float]:
        return rules[name].factor, rules[name].long_window_s, rules[name].short_window_s

    assert shape("fast_burn") == (14.4, 3600, 300)
    assert shape("slow_burn") == (6, 21600, 1800)
    assert rules["budget_burn"].severity is Severity.TICKET
    assert (rules["budget_burn"].long_window_s, rules["budget_burn"].short_window_s) == (3 * 86400, 6 * 3600)
    assert set(book.events) == set(KNOWN_EVENTS)
    runbooks = {s.runbook for s in book.slos.values()} | {e.runbook for e in book.events.values()}
    for name in runbooks:
        assert (Path(DEFAULT_SLO_FILE).parents[1] / "docs" / "runbooks" / f"{name}.md").exists()


def test_window_scale_compresses_every_window_but_not_objectives_or_grace() -> None:
    book = load_slo_book(Settings(_env_file=None, slo_window_scale=0.01))
    freshness = book.slos["speed_freshness"]
    assert freshness.burn_rules[0].long_window_s == pytest.approx(36.0)
    assert book.budget_window_s == pytest.approx(30 * 86400 * 0.01)
    assert book.slos["validation_rate"].window_s == pytest.approx(3.0)
    assert freshness.objective_max == 60.0 and freshness.startup_grace_s == 180.0


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda d: d["slos"]["speed_freshness"].pop("objective"), "slos.speed_freshness.objective",
         "missing"),
        (lambda d: d["slos"]["speed_freshness"].update(objectve={"max": 60}), "slos.speed_freshness.objectve",
         "unknown key"),
        (lambda d: d["slos"]["speed_freshness"].update(objective={"max": "sixty"}),
         "slos.speed_freshness.objective.max", "expected a number"),
        (lambda d: d["slos"]["speed_freshness"].update(objective={"max": 60, "min": 1}),
         "slos.speed_freshness.objective", "expected {max: N} or {min: N}"),
        (lambda d: d["burn_rate_rules"]["fast_burn"].update(long_window="an hour"),
         "burn_rate_rules.fast_burn.long_window", "expected a duration"),
        (lambda d: d["burn_rate_rules"]["fast_burn"].update(short_window="2h"),
         "burn_rate_rules.fast_burn.short_window", "shorter than long_window"),
        (lambda d: d["slos"]["speed_latency"].update(burn_rate_rules=["fast_brun"]),
         "slos.speed_latency.burn_rate_rules", "unknown rule 'fast_brun'"),
        (lambda d: d["slos"]["speed_latency"].update(sli="latency"), "slos.speed_latency.sli", "unknown SLI"),
        (lambda d: d["slos"]["speed_latency"].update(target=1.5), "slos.speed_latency.target", "outside"),
        (lambda d: d["slos"]["input_traffic"].update(hard_breach="wake-me"), "slos.input_traffic.hard_breach",
         "expected one of page, ticket"),
        (lambda d: d["events"].pop("monitor_down"), "events.monitor_down", "required event alert is missing"),
        (lambda d: d["events"]["batch_run_failed"].update(runbook="no-such-runbook"),
         "events.batch_run_failed.runbook", "no runbook docs/runbooks/no-such-runbook.md"),
        (lambda d: d["lifecycle"].update(resolve_after_samples=0), "lifecycle.resolve_after_samples",
         "integer ≥ 1"),
    ],
)  # fmt: skip
def test_a_malformed_slo_file_names_the_key(tmp_path: Path, mutate, key: str, problem: str) -> None:
    document = _default()
    mutate(document)
    settings = _write(tmp_path, document)
    with pytest.raises(SloFileError) as error:
        load_slo_book(settings)
    message = str(error.value)
    assert str(settings.slo_file) in message and f"{key}:" in message and problem in message


def test_a_file_that_is_not_yaml_or_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(SloFileError, match="not valid YAML"):
        load_slo_book(_write(tmp_path, "slos: [unclosed"))
    with pytest.raises(SloFileError, match="SLO file not found"):
        load_slo_book(Settings(_env_file=None, slo_file=tmp_path / "nowhere.yaml"))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"alert_notifiers": "log,pagerduty"}, "NETFLIX_PAGERDUTY_ROUTING_KEY"),
        ({"alert_notifiers": "pagerduty", "pagerduty_routing_key": "   "}, "NETFLIX_PAGERDUTY_ROUTING_KEY"),
        ({"alert_notifiers": "slack"}, "NETFLIX_SLACK_BOT_TOKEN or NETFLIX_SLACK_WEBHOOK_URL"),
        ({"alert_notifiers": "slack", "slack_bot_token": "xoxb-1"}, "NETFLIX_SLACK_CHANNEL"),
        ({"alert_notifiers": "webhook"}, "NETFLIX_ALERT_WEBHOOK_URL"),
        ({"alert_notifiers": "log,pager"}, "unknown notifier(s) pager"),
    ],
)
def test_a_notifier_without_its_secret_fails_naming_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidSettings) as error:
        Settings(_env_file=None, **env)
    assert named in str(error.value)
    for value in env.values():
        if value.startswith("xoxb"):
            assert value not in str(error.value), "a secret must not be echoed in the error"


def test_nothing_pages_with_an_empty_routing_key() -> None:
    with pytest.raises(ValueError, match="routing key is empty"):
        PagerDutyNotifier("http://127.0.0.1:9/v2/enqueue", " ")
    built = build_notifiers(
        Settings(_env_file=None, alert_notifiers="log,pagerduty", pagerduty_routing_key="k" * 32)
    )
    assert set(built) == {"log", "pagerduty"}


def _command(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETFLIX_")}
    return subprocess.run(
        [EXE, *args], env={**clean, "NETFLIX_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_commands_refuse_to_start_naming_the_key(tmp_path: Path) -> None:
    document = _default()
    document["slos"]["speed_freshness"]["objective"] = {"max": "soon"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    monitor = _command(["monitor", "--check"], {"NETFLIX_SLO_FILE": str(bad)}, tmp_path)
    assert monitor.returncode == 2
    assert "slos.speed_freshness.objective.max" in monitor.stderr
    launcher = _command(["up", "--skip-batch"], {"NETFLIX_SLO_FILE": str(bad)}, tmp_path)
    assert launcher.returncode != 0 and "slos.speed_freshness.objective.max" in launcher.stderr
    assert not (tmp_path / "data" / "broker").exists(), "nothing may start before the SLO file is checked"
    no_key = _command(["monitor", "--check"], {"NETFLIX_ALERT_NOTIFIERS": "pagerduty"}, tmp_path)
    assert no_key.returncode == 2 and "NETFLIX_PAGERDUTY_ROUTING_KEY" in no_key.stderr
    assert "Traceback" not in no_key.stderr
    good = _command(["monitor", "--check"], {}, tmp_path)
    assert good.returncode == 0, good.stderr
