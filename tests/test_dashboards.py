"""The dashboards without a browser: "no data yet" instead of a stack trace, reads that never block writers.

Streamlit's ``AppTest`` runs the real page scripts in this process; settings reach them through the
environment, as they do in the server the run command starts. The browser tests
(``test_dashboards_browser.py``) check the rendered pages and their numbers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from core.settings import Settings, get_settings
from core.warehouse import WarehouseLayout, connect_serving
from dashboards import data
from dashboards.formatting import age, count, instant, when
from dashboards.links import DASHBOARDS, HISTORY, REALTIME, dashboard_url
from dashboards.server import APP, streamlit_command
from streaming.realtime_store import RealtimeStore
from tests.conftest import free_port, stop_process, wait_for_port
from tests.test_streaming_store import T0, record, session_table, sessions

VIEWS = APP.parent / "views"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the page scripts come from the environment, as in the real server."""
    monkeypatch.setenv("NETFLIX_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def run_page(name: str) -> AppTest:
    app = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=60)
    return app.run()


def test_pages_say_no_data_yet_on_a_fresh_machine(data_dir: Path) -> None:
    for dashboard in DASHBOARDS:
        page = run_page(dashboard.path)
        assert not page.exception, page.exception
        assert [t.value for t in page.title] == [dashboard.title]
        assert any(info.value.startswith("No data yet") for info in page.info), [i.value for i in page.info]


def test_a_warehouse_file_that_is_not_a_database_is_no_data_yet(data_dir: Path) -> None:
    layout = WarehouseLayout.from_settings(Settings(_env_file=None, data_dir=data_dir))
    layout.root.mkdir(parents=True)
    layout.batch_published.write_bytes(b"half-copied, not a DuckDB file")
    for dashboard in DASHBOARDS:
        page = run_page(dashboard.path)
        assert not page.exception
        assert any("No data yet" in info.value for info in page.info)


def test_the_realtime_page_reads_the_speed_layer_alone_before_the_first_batch_build(data_dir: Path) -> None:
    layout = WarehouseLayout.from_settings(Settings(_env_file=None, data_dir=data_dir))
    store = RealtimeStore(layout)
    try:
        batch = sessions(1, 40)
        end = max(s["window_start"] for s in batch) + timedelta(minutes=5)
        store.commit_batch(record(0, len(batch), end), session_table(batch))
        store.publish()
    finally:
        store.close()
    page = run_page(REALTIME.path)
    assert not page.exception
    metrics = {m.label: m.value for m in page.metric}
    assert metrics[f"Sessions (last {data.RECENT_HOURS} h)"] == "40"
    assert metrics["Newest window (UTC)"] == when(T0 + timedelta(minutes=10))
    assert "No batch build published yet" in [c.value for c in page.caption]
    assert len(page.get("vega_lite_chart")) == 2


def test_readers_never_hold_the_files_writers_need(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a dashboard reads in a loop, the stream commits to realtime.duckdb and the batch layer replaces
    batch.duckdb: neither writer waits for or fails because of a reader, and no read fails because a
    snapshot was replaced under it (no retry here: the page's retries once hid that)."""
    monkeypatch.setattr(data, "READ_ATTEMPTS", 1)
    layout = WarehouseLayout.from_settings(Settings(_env_file=None, data_dir=data_dir))
    store = RealtimeStore(layout)
    stop, reads, problems = threading.Event(), [], []

    def read_forever() -> None:
        while not stop.is_set():
            try:
                reads.append(len(data.realtime(layout).windows))
            except data.NoDataYet as exc:
                problems.append(str(exc)) if "cannot be read" in str(exc) else None

    reader = threading.Thread(target=read_forever)
    try:
        store.publish()
        reader.start()
        for batch_id in range(20):
            batch = sessions(batch_id, 10)
            end = max(s["window_start"] for s in batch) + timedelta(minutes=5)
            store.commit_batch(record(batch_id, len(batch), end), session_table(batch))
            store.publish()
            build = layout.prepare_batch_build()
            with duckdb.connect(str(build)) as con:
                w = f"SELECT TIMESTAMP '{T0}' AS batch_watermark"
                con.execute(f"CREATE OR REPLACE TABLE batch_watermark AS {w}")
            layout.publish_batch_build()
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join(30)
        store.close()
    assert len(reads) > 5 and problems == []
    assert list(layout.reader_pins.iterdir()) == []  # every closed session let go of its pinned snapshots


def test_a_reader_removes_the_pins_of_dead_readers_on_its_host_only(tmp_path: Path) -> None:
    """A reader that crashed leaves its pin folder; the next reader on the same host removes it, and leaves a
    live reader's and another host's (a container sharing the warehouse) alone."""
    layout = WarehouseLayout(tmp_path / "warehouse")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = socket.gethostname()
    folders = [
        f"{dead.stdout.strip()}@{host}.crashed",
        f"{os.getpid()}@{host}.live",
        f"1@other-{host}.elsewhere",
    ]
    for name in folders:
        (layout.reader_pins / name).mkdir(parents=True)
    connect_serving(layout).close()
    assert sorted(f.name for f in layout.reader_pins.iterdir()) == sorted(folders[1:])


def test_links_and_server_command_bind_loopback_only() -> None:
    settings = Settings(_env_file=None, dashboard_port=8765)
    assert dashboard_url(settings, REALTIME) == "http://127.0.0.1:8765/realtime"
    assert dashboard_url(settings, HISTORY, port=9000) == "http://127.0.0.1:9000/history"
    command = streamlit_command(settings)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8765"
    assert options["--browser.gatherUsageStats"] == "false" and options["--server.headless"] == "true"
    assert os.path.basename(command[4]) == "app.py"


def test_formatting_is_what_the_browser_tests_read_back() -> None:
    assert count(1234) == "1,234" and count(None) == "0"
    assert when(datetime(2026, 11, 30, 10, 5, 59)) == "2026-11-30 10:05" and when(None) == "none"
    assert instant(datetime(2026, 11, 30, 10, 5, 59, 900_000)) == "2026-11-30 10:05:59"
    assert age(None) == "no batch yet" and age(12.4) == "12 s ago" and age(600) == "10 min ago"
    assert age(3 * 3600) == "3.0 h ago"


def test_the_dashboards_command_prints_its_urls_serves_loopback_only_and_stops_on_sigint(
    data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "NETFLIX_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dashboards", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True,
    )  # fmt: skip
    try:
        printed = [proc.stdout.readline().strip() for _ in DASHBOARDS]
        assert printed == [f"{d.title}: http://127.0.0.1:{port}/{d.path}" for d in DASHBOARDS]
        wait_for_port(port, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        listening = {c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"}
        assert listening and {address.ip for address in listening} == {"127.0.0.1"}
        proc.send_signal(signal.SIGINT)  # what the run command's supervisor and a terminal's Ctrl-C send
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
