"""A real headless Chromium (Debian's, driven by Playwright) against a real dashboards server, for tests.

``playwright install`` cannot download a browser here, so Playwright launches ``/usr/bin/chromium``
(``make test`` installs it with apt, see the Makefile's ``browser`` target). A missing browser is an error,
not a skip: CI must not pass without it; a developer without Chromium deselects these tests with
``-m "not browser"``. Every page records console errors, warnings, page errors and requests that leave
127.0.0.1; the test fails on any that is not in the short allow-list of what a correct Streamlit page logs.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import Settings
from dashboards.links import base_url
from dashboards.server import streamlit_command
from tests.conftest import free_port, stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
ALLOWED_CONSOLE = (
    re.compile(r'^WARN Infinite extent for field "[^"]+": \[Infinity, -Infinity\]$'),  # before data arrives
    re.compile(r'^WARN Dropping "fit-y" because spec has discrete height\.$'),  # heatmap, stretch width
)
# Opening a page URL directly, the frontend probes <page>/_stcore/... before falling back to the root.
ALLOWED_404 = re.compile(r"^http://127\.0\.0\.1:\d+/[\w-]+/_stcore/(health|host-config)$")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium (`make browser` installs it "
            "with apt-get); without it, deselect them with -m 'not browser'"
        )


@contextmanager
def dashboards_server(settings: Settings, env: dict[str, str], log: Path) -> Iterator[str]:
    """``netflix-lambda dashboards``' Streamlit command on a free port; yields the base URL, stops by PID."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            streamlit_command(settings, port), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = base_url(settings, port)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(proc)


@dataclass
class Problems:
    """What a page logged that a correct page does not."""

    base: str
    found: list[str] = field(default_factory=list)

    def console(self, message: Any) -> None:
        if message.type == "error":
            url = message.location.get("url", "")
            if not (message.text.startswith("Failed to load resource") and ALLOWED_404.match(url)):
                self.found.append(f"console error: {message.text} @ {url}")
        elif message.type == "warning" and not any(p.match(message.text) for p in ALLOWED_CONSOLE):
            self.found.append(f"console warning: {message.text}")

    def request(self, request: Any) -> None:
        if not request.url.startswith((self.base, "data:", "blob:")):
            self.found.append(f"external request: {request.url}")


@contextmanager
def watched_page(browser: Any, base: str, height: int = 1100) -> Iterator[tuple[Any, Problems]]:
    context = browser.new_context(viewport={"width": 1400, "height": height})
    page = context.new_page()
    problems = Problems(base)
    page.on("console", problems.console)
    page.on("pageerror", lambda error: problems.found.append(f"page error: {error}"))
    page.on("request", problems.request)
    page.set_default_timeout(60_000)
    try:
        yield page, problems
    finally:
        context.close()


def wait_rendered(page: Any) -> None:
    """The first metric is there and Streamlit's "running" indicator is gone."""
    page.get_by_test_id("stMetricValue").first.wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def metric(page: Any, label: str) -> str:
    """The value of the metric labelled exactly ``label`` (labels are matched exactly, not as substrings)."""
    labelled = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    box = page.get_by_test_id("stMetric").filter(has=labelled)
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def screenshot_all(page: Any, path: Path) -> None:
    """The whole page: Streamlit scrolls inside stMain, so grow the viewport to its height first."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": max(height, 600)})
    wait_rendered(page)  # a refresh may be drawing: shoot a finished page
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
