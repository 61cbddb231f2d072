"""Longest test files first, so `make test`'s workers finish together.

`make test` runs whole files on two workers (``--dist loadfile``). xdist's default order puts files with many
tests first, which are the quick unit files; the end-to-end files (one or two tests of minutes each) came
last, and one worker ran the last of them alone for minutes. Handing files out longest first (the
classic greedy schedule) leaves at most one short file's tail. How long each file takes is measured, not
guessed: ``tests/file_seconds.json``, written by ``pytest --record-file-seconds`` (a whole run on the CI
machine). A file it does not know yet goes first: new files are usually the end-to-end ones.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

SECONDS_FILE = Path(__file__).with_name("file_seconds.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-file-seconds",
        action="store_true",
        help=f"write each test file's total time (setup, tests, teardown) to {SECONDS_FILE.name}",
    )


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def known_seconds() -> dict[str, float]:
    return json.loads(SECONDS_FILE.read_text()) if SECONDS_FILE.exists() else {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seconds = known_seconds()
    longest = max(seconds.values(), default=0.0) + 1
    items.sort(key=lambda item: -seconds.get(_file(item.nodeid), longest))  # stable: order within a file


class FileSeconds:
    """Sums the phases' durations per file from the reports (on xdist's controller, every worker's)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_file(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # an xdist worker: the controller writes the whole run's
        ordered = {name: round(s, 1) for name, s in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
        SECONDS_FILE.write_text(json.dumps(ordered, indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--record-file-seconds") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(FileSeconds(), "file-seconds")
