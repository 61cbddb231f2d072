"""The stream's validation in Spark says exactly what the producer's Python validator says, per message.

Expected reasons are computed by :func:`producer.events.validate_message` (plain Python, an independent
implementation) for every case, so nothing here is hard-coded: the invalid and valid cases of the
schema tests, a seeded batch of factory events with every poison kind, and events dated in the future.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from producer import events
from producer.publish import EventFactory, utc_iso
from streaming import validation
from tests.test_event_schema import INVALID, VALID, VALID_V1


def test_every_validator_message_has_a_reason_code() -> None:
    codes = validation.reason_codes()
    for version in events.SUPPORTED_VERSIONS:
        for rule in events.rules(version):
            code = codes[rule.message]
            field = rule.field.replace(".", "_")
            assert code in (f"missing_{field}", f"invalid_{field}")
    assert codes[events.INVALID_JSON] == "invalid_json"
    assert codes[events.VERSION_UNSUPPORTED] == "unsupported_schema_version"


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from netflix_assets.settings import Settings
    from streaming.job import build_spark

    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("validation"), spark_master="local[1]",
        spark_shuffle_partitions=1, spark_driver_memory="1g",
    )  # fmt: skip
    session = build_spark(settings, "test_streaming_validation")
    yield session
    session.stop()


def _messages(spark: Any, cases: list[tuple[str, bytes, datetime]]) -> Any:
    rows = [(i, i, name.encode(), bytearray(raw), ts) for i, (name, raw, ts) in enumerate(cases)]
    return spark.createDataFrame(
        rows, "partition int, offset long, key binary, value binary, timestamp timestamp"
    )


@pytest.mark.slow
def test_spark_reasons_match_the_python_validator_on_every_case(spark: Any) -> None:
    now = datetime.now(UTC)
    factory = EventFactory(schema_version=None, poison_rate=0.6, late_rate=0.1, seed=23)
    record = {
        k: v for k, v in VALID_V1.items() if k not in ("event_id", "schema_version", "event_time", "producer")
    }
    generated = [(f"factory-{i}", factory.build(dict(record)).value) for i in range(400)]
    cases = [(n, raw, now) for n, raw, _ in INVALID] + [(n, raw, now) for n, raw in VALID]
    cases += [(n, raw, now) for n, raw in generated]
    parsed = validation.parse_messages(_messages(spark, cases))
    rows = validation.with_errors(parsed).select("key", "errors", "reason", "valid").collect()
    assert all(r["valid"] == (r["reason"] is None) for r in rows)
    got = {bytes(r["key"]).decode(): (list(r["errors"]), r["reason"]) for r in rows}
    expected = {}
    for name, raw, _ in cases:
        errors = events.validate_message(raw)
        expected[name] = (errors, validation.reason_code(errors[0]) if errors else None)
    assert len(got) == len(cases)
    disagreements = {name: (got[name], expected[name]) for name in expected if got[name] != expected[name]}
    assert disagreements == {}
    kinds = {validation.reason_code(e[0]) for e, _ in expected.values() if e}
    assert {"invalid_json", "unsupported_schema_version"} <= kinds and len(kinds) >= 8, kinds
    assert sum(1 for e, _ in expected.values() if not e) >= 100


@pytest.mark.slow
def test_fast_path_agrees_with_the_exact_rules(spark: Any) -> None:
    """The cheap check must be TRUE exactly when the exact expression finds no error."""
    factory = EventFactory(schema_version=None, poison_rate=0.5, late_rate=0.0, seed=5)
    record = {
        k: v for k, v in VALID_V1.items() if k not in ("event_id", "schema_version", "event_time", "producer")
    }
    raws = [raw for _, raw, _ in INVALID] + [raw for _, raw in VALID]
    raws += [factory.build(dict(record)).value for _ in range(300)]
    frame = spark.createDataFrame([(bytearray(r),) for r in raws], "value binary").selectExpr(
        "try_parse_json(CAST(value AS STRING)) AS v"
    )
    frame = frame.selectExpr("*", f"{validation.fields_struct_sql('v')} AS {validation.FIELDS_COLUMN}")
    frame = frame.selectExpr("*", *validation._typed_columns_sql())
    rows = frame.selectExpr(
        f"{validation.fast_valid_sql('v')} AS fast",
        f"{validation.fast_valid_on_typed_sql()} AS on_typed",  # the form parse_messages uses
        f"size({events.spark_errors_sql('v')}) = 0 AS exact",
    ).collect()
    assert [r["fast"] for r in rows] == [r["exact"] for r in rows]
    assert [r["on_typed"] for r in rows] == [r["exact"] for r in rows]
    assert any(r["fast"] for r in rows) and not all(r["fast"] for r in rows)


@pytest.mark.slow
def test_events_dated_after_their_kafka_timestamp_are_rejected(spark: Any) -> None:
    factory = EventFactory(schema_version=2, seed=3)
    record = {
        k: v for k, v in VALID_V1.items() if k not in ("event_id", "schema_version", "event_time", "producer")
    }
    sent = time.time()
    cases = []
    aheads = (-600, 0, validation.FUTURE_TOLERANCE_S - 60, validation.FUTURE_TOLERANCE_S + 60, 86_400)
    for ahead_s in aheads:
        message = factory.build({**record, "event_time": utc_iso(sent + ahead_s)}, now=sent)
        cases.append((str(ahead_s), message.value, datetime.fromtimestamp(sent, UTC)))
    parsed = validation.with_errors(validation.parse_messages(_messages(spark, cases)))
    rows = parsed.selectExpr(
        "key", "reason", "unix_micros(event_time) - unix_micros(timestamp) AS ahead_us"
    ).collect()
    for row in rows:
        too_far = row["ahead_us"] > validation.FUTURE_TOLERANCE_S * 1e6
        assert (row["reason"] == "event_time_in_future") == too_far, (bytes(row["key"]), row["reason"])
    rejected = sum(r["reason"] == "event_time_in_future" for r in rows)
    assert rejected == sum(a > validation.FUTURE_TOLERANCE_S for a in aheads) > 0
