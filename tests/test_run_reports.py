"""What `netflix-lambda up` says about the stream's errors: the reset that every start but the first brings
(the embedded broker starts empty) is a warning that says what happened, not a wall of text as an error;
after the first realtime batch, the same reset (a broker restarted under load) stays an error."""

from __future__ import annotations

import logging
import time

import pytest

from cli.dagster_api import Run
from cli.run_reports import RunReport, StreamReport
from streaming.broker_reset import BrokerReset


def _reset_message() -> str:
    """The message the stream really logs (streaming/broker_reset.py), for a second start's fresh broker."""
    reset = BrokerReset(
        number=1, cause="BrokerDataLossError: cluster id changed", previous_cluster="netflix-embedded-a",
        last_committed_batch=36, committed_offsets={0: 858}, unfinished_batch=None, unfinished_offsets={},
        cluster="netflix-embedded-b", end_offsets={0: 370}, archived_to="speed/_checkpoints/_archived/x",
        batch_id_base=37,
    )  # fmt: skip
    return reset.message("watch_events", "netflix_watch_events")


def _log_event(message: str) -> dict[str, object]:
    return {"__typename": "LogMessageEvent", "level": "ERROR", "message": message, "timestamp": "0"}


@pytest.fixture(name="report")
def stream_report(monkeypatch: pytest.MonkeyPatch) -> StreamReport:
    monkeypatch.setattr(StreamReport, "first_batch_seen", False)
    monkeypatch.setattr(RunReport, "stopping", False)
    run = Run("3f2a9c1e" + "0" * 28, "speed_stream_job", "STARTED", time.time(), None, None)
    return StreamReport("http://127.0.0.1:3000", run, True, lambda: 1.0)


def test_a_fresh_embedded_broker_reset_is_a_warning_saying_what_happened(
    report: StreamReport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cli.runs"):
        report.on_event(_log_event(_reset_message()))
        report.on_event(_log_event("StreamFailedError: the query stopped"))
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said[0][0] == logging.WARNING and "the embedded broker starts empty at every start" in said[0][1]
    assert "LOST DATA" not in said[0][1]
    assert said[1] == (logging.ERROR, "stream: StreamFailedError: the query stopped")


def test_the_same_reset_after_the_first_realtime_batch_stays_an_error(
    report: StreamReport, caplog: pytest.LogCaptureFixture
) -> None:
    StreamReport.first_batch_seen = True
    with caplog.at_level(logging.INFO, logger="cli.runs"):
        report.on_event(_log_event(_reset_message()))
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert caplog.records[0].getMessage().startswith("stream: EMBEDDED BROKER LOST DATA: stream watch_events")
