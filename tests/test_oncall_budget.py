"""Error budgets and multiwindow burn rates from the real ``slo_samples`` history (DuckDB), checked against
a plain-Python count over the same samples; the snapshots readers use are published and queryable."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from core.warehouse import WarehouseLayout, connect_serving
from oncall.budget import HARD_BREACH, burn_rate, evaluate
from oncall.definitions import Severity, load_slo_book
from oncall.history import SampleHistory
from oncall.sample import Sample

INTERVAL = 5.0
NOW = 1_800_000_000.0


def _series(
    seconds: float, bad_between: list[tuple[float, float]], slo: str = "speed_freshness"
) -> list[Sample]:
    """One sample per interval over the last ``seconds``; bad inside the given (ago_from, ago_to) spans."""
    samples = []
    for i in range(int(seconds / INTERVAL)):
        ts = NOW - i * INTERVAL
        ago = NOW - ts
        bad = any(lo <= ago < hi for lo, hi in bad_between)
        samples.append(Sample(slo, ts, 90.0 if bad else 5.0, not bad, {"i": i}))
    return samples


def _expected_burn(samples: list[Sample], window: float, target: float) -> float:
    bad = sum(1 for s in samples if s.ts > NOW - window and s.good is False)
    return min(bad * INTERVAL / window, 1.0) / (1 - target)


@pytest.fixture
def history(tmp_path: Path) -> SampleHistory:
    store = SampleHistory(WarehouseLayout(tmp_path / "warehouse"), retention_s=40 * 86400)
    yield store
    store.close()


def test_counts_and_burn_rates_match_an_independent_count(history: SampleHistory) -> None:
    rng = random.Random(7)
    spans = [(lo, lo + rng.uniform(60, 900)) for lo in sorted(rng.uniform(0, 7 * 3600) for _ in range(12))]
    samples = _series(8 * 3600, spans)
    samples += [Sample("speed_latency", s.ts, None, None, {}) for s in samples[::3]]  # no-data samples
    history.append(samples)
    book = load_slo_book(Settings(_env_file=None))
    slo = book.slos["speed_freshness"]
    counts = history.counts(NOW, book.windows())
    status = evaluate(slo, samples[0], counts["speed_freshness"], INTERVAL, book.budget_window_s)
    freshness = [s for s in samples if s.slo == "speed_freshness"]
    for state in status.rules:
        assert state.long_burn == pytest.approx(
            _expected_burn(freshness, state.rule.long_window_s, slo.target)
        )
        assert state.short_burn == pytest.approx(
            _expected_burn(freshness, state.rule.short_window_s, slo.target)
        )
    budget_burn = _expected_burn(freshness, book.budget_window_s, slo.target)
    assert status.budget_left == pytest.approx(1 - budget_burn)
    assert counts["speed_latency"][3600.0] == (0, 0), "samples without a verdict count neither way"


def test_multiwindow_rule_fires_only_when_both_windows_burn(history: SampleHistory) -> None:
    book = load_slo_book(Settings(_env_file=None))
    slo = book.slos["speed_freshness"]
    # 20 minutes bad, ending 10 minutes ago: the 1 h window burns 33 %/1 % = 33x, the 5 min window 0x.
    recovered = _series(3600, [(600, 1800)])
    history.append(recovered)
    counts = history.counts(NOW, book.windows())["speed_freshness"]
    status = evaluate(slo, recovered[0], counts, INTERVAL, book.budget_window_s)
    fast = next(r for r in status.rules if r.rule.name == "fast_burn")
    assert fast.long_burn > 14.4 and fast.short_burn == 0.0 and not fast.firing
    assert status.firing(Severity.PAGE) == []


def test_a_burning_hour_pages_and_the_hard_breach_is_its_own_rule(tmp_path: Path) -> None:
    history = SampleHistory(WarehouseLayout(tmp_path / "w"), retention_s=40 * 86400)
    book = load_slo_book(Settings(_env_file=None))
    slo = book.slos["speed_freshness"]
    burning = _series(3600, [(0, 600)])  # the last 10 minutes bad: 1 h burn 16.7x, 5 min burn 100x
    history.append(burning)
    counts = history.counts(NOW, book.windows())["speed_freshness"]
    status = evaluate(slo, burning[0], counts, INTERVAL, book.budget_window_s)
    assert status.firing(Severity.PAGE) == [HARD_BREACH, "fast_burn"]
    assert status.firing(Severity.TICKET) == []  # 10 bad minutes are 0.2 % of 3 days
    history.close()


def test_a_new_monitor_does_not_page_on_its_first_bad_sample_of_an_empty_hour() -> None:
    # One bad 5 s sample over an unobserved hour is 0.14 % of it: far below 14.4 x 1 %.
    assert burn_rate(1, INTERVAL, 3600, 0.99) == pytest.approx(5 / 3600 / 0.01)
    assert burn_rate(1, INTERVAL, 3600, 0.99) < 14.4


def test_published_snapshots_are_readable_beside_the_writer(history: SampleHistory, tmp_path: Path) -> None:
    samples = _series(600, [(0, 60)])
    history.append(samples)
    book = load_slo_book(Settings(_env_file=None))
    slo = book.slos["speed_freshness"]
    counts = history.counts(NOW, book.windows())["speed_freshness"]
    status = evaluate(slo, samples[0], counts, INTERVAL, book.budget_window_s)
    history.publish(NOW, [status.row()])
    con = connect_serving(WarehouseLayout(tmp_path / "warehouse"))
    # NOW is on an hour boundary: the samples span two hours, both published by the first publish.
    assert con.execute("SELECT count(*), count(DISTINCT ts) FROM oncall.slo_samples").fetchone() == (120, 120)
    row = con.execute("SELECT slo, value, good, error_budget_left, firing FROM oncall.slo_status").fetchone()
    assert row == ("speed_freshness", 90.0, False, pytest.approx(status.budget_left, abs=1e-4), "hard_breach")
    second_monitor = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path\n"
         "from core.warehouse import WarehouseLayout\n"
         "from oncall.history import SampleHistory, HistoryBusy\n"
         "try: SampleHistory(WarehouseLayout(Path(sys.argv[1])), 60)\n"
         "except HistoryBusy as exc: print(exc); sys.exit(3)", str(tmp_path / "warehouse")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second_monitor.returncode == 3 and "only one SLO monitor" in second_monitor.stdout


def test_prune_keeps_the_retention(tmp_path: Path) -> None:
    history = SampleHistory(WarehouseLayout(tmp_path / "w"), retention_s=1800.0)
    history.append(_series(7200, []))
    assert history.counts(NOW, [7300.0])["speed_freshness"][7300.0] == (1440, 0)
    history.prune(NOW)
    assert history.counts(NOW, [7300.0])["speed_freshness"][7300.0] == (361, 0)  # ages 0 … 1800 s kept
    history.close()
