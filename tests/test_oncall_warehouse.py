"""The monitor's warehouse readings when BigQuery cannot be reached: samples that say so, and no stall.

A real ``google-cloud-bigquery`` client against a port on 127.0.0.1 where nothing listens (no emulator:
the point is that nothing answers). What the readings are when BigQuery does answer is checked against
the emulator where the real stream and the real batch layer wrote them (``tests/test_streaming_bigquery.py``,
``tests/test_bigquery_batch_layer.py``).
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from core.warehouse import Warehouse
from oncall.bigquery_reader import BigQueryWarehouse
from oncall.definitions import load_slo_book
from oncall.indicators import SLIS, Context
from oncall.readings import Readings
from tests.conftest import free_port

PROJECT = "on-call-test"
WAREHOUSE_SLIS = ("speed_latency_p95", "validation_success_rate", "marts_age")


def count_queries(reader: BigQueryWarehouse) -> list[str]:
    """The SQL of every query the reader's (real) client sends from now on."""
    queries: list[str] = []
    real_query = reader.client.query
    reader.client.query = lambda sql, **kw: queries.append(sql) or real_query(sql, **kw)  # type: ignore[method-assign]
    return queries


def test_an_unreachable_bigquery_gives_samples_without_verdict_and_one_query_per_refresh(
    tmp_path: Path,
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", warehouse="bigquery", bigquery_project=PROJECT,
        bigquery_api_endpoint=f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    reader = BigQueryWarehouse(Warehouse.from_settings(settings).bigquery)
    queries = count_queries(reader)
    warehouse_slis = [slo for slo in load_slo_book(settings).slos.values() if slo.sli in WAREHOUSE_SLIS]
    context = Context(monitor_started_at=0.0, traffic_expected=True)
    try:
        for _ in range(2):  # two samples, as the monitor takes them seconds apart
            readings = Readings(None, reader)  # type: ignore[arg-type]  # no topic SLI is sampled here
            for slo in warehouse_slis:
                sample = SLIS[slo.sli](slo, readings, context)
                assert sample.good is None and sample.value is None, sample
                headline = sample.details["headline"]
                assert headline.startswith(f"not measured: cannot read BigQuery project {PROJECT}"), headline
    finally:
        reader.close()
    assert len(warehouse_slis) == len(WAREHOUSE_SLIS)
    assert len(queries) == 2, queries  # the ledger once and the marts once, for both samples
