"""The stream's verdict on each message is exactly the producer's Python validator's.

Expectations come from :func:`core.contracts.events.validate_message` (plain Python) and, for the canonical
path, also from a stock JSON Schema validator: nothing is hard-coded. Cases: every valid and invalid case of
the schema tests, each in its spaced ``json.dumps`` encoding and re-encoded compactly by ``orjson`` as the
producer writes; a seeded stream of factory events with every poison kind; events dated in the future.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import orjson
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from core.contracts import events, legacy_v0
from producer.publish import POISON_KINDS, EventFactory, utc_iso
from producer.sources import Catalog, synthetic_source
from streaming import validation
from streaming.kafka_source import legacy_events
from tests.legacy_fixtures import INF, NAN, expected_event, legacy_line, legacy_record
from tests.test_event_schema import INVALID, VALID, VALID_V1, stock_valid

CATALOG = Catalog(
    user_ids=tuple(f"user_{i:05d}" for i in range(50)),
    user_countries=tuple(("USA", "Canada", None)[i % 3] for i in range(50)),
    movie_ids=tuple(f"movie_{i:05d}" for i in range(20)),
)


def test_every_validator_message_has_a_reason_code() -> None:
    codes = validation.reason_codes()
    for version in events.SUPPORTED_VERSIONS:
        for rule in events.rules(version):
            code = codes[rule.message]
            field = rule.field.replace(".", "_")
            assert code in (f"missing_{field}", f"invalid_{field}")
    assert codes[events.INVALID_JSON] == "invalid_json"
    assert codes[events.VERSION_UNSUPPORTED] == "unsupported_schema_version"


def test_the_source_maps_exactly_the_valid_legacy_events() -> None:
    """The source's cheap pre-filter skips only messages that cannot be v0: what it maps is what the
    mapping maps, message by message, over every case we have (ours, poison, foreign encodings, v0)."""
    raws = [raw for _, raw in _schema_cases() + _factory_cases(300, 0.5, 29)]
    raws += [raw for _, raw, _, _ in _legacy_cases(60)] + [b"", b"[]", b'{"event_id"', b" {}"]
    values = pa.array(raws, pa.binary())
    assert legacy_events(values).to_pylist() == [legacy_v0.mapped_value(raw) for raw in raws]
    assert sum(m is not None for m in legacy_events(values).to_pylist()) >= 40


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from core.settings import Settings
    from core.spark import start_spark

    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("validation"), spark_master="local[1]",
        spark_shuffle_partitions=1, spark_driver_memory="1g",
    )  # fmt: skip
    session = start_spark(settings, "test_streaming_validation")
    yield session
    session.stop()


NUMBER_FIELDS = {
    spec.path
    for v in events.SUPPORTED_VERSIONS
    for spec in events.field_specs(v)
    if spec.types == ("number",)
}


def _compact(raw: bytes) -> bytes | None:
    """The producer's encoding of a case that is JSON at all (``orjson``; a number field's integer
    written as a float, as the producer's sources hold them)."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if isinstance(event, dict):
        event = {k: float(v) if k in NUMBER_FIELDS and type(v) is int else v for k, v in event.items()}
    return orjson.dumps(event)


def _schema_cases() -> list[tuple[str, bytes]]:
    cases = [(name, raw) for name, raw, _ in INVALID] + list(VALID)
    compact = [(f"{name}-compact", c) for name, raw in cases if (c := _compact(raw)) is not None]
    return cases + compact


def _factory_cases(count: int, poison_rate: float, seed: int) -> list[tuple[str, bytes]]:
    factory = EventFactory(schema_version=None, poison_rate=poison_rate, late_rate=0.1, seed=seed)
    records = islice(synthetic_source(CATALOG, seed=seed), count)
    return [(f"factory-{i}-{m.fault}", m.value) for i, m in enumerate(factory.messages(records))]


def _judge(
    spark: Any, cases: list[tuple[str, bytes, datetime]], accept_v0: bool = True
) -> tuple[Any, validation.Verdicts]:
    """The stream's verdicts: the Kafka source's v0 mapping, ``parse_messages`` in Spark, then ``judge`` in
    the driver, as in a batch."""
    values = pa.array([raw for _, raw, _ in cases], pa.binary())
    mapped = legacy_events(values).to_pylist() if accept_v0 else [None] * len(cases)
    rows = [
        (i, i, name.encode(), bytearray(raw), ts, None if m is None else bytearray(m))
        for i, ((name, raw, ts), m) in enumerate(zip(cases, mapped, strict=True))
    ]
    frame = spark.createDataFrame(
        rows,
        "partition int, offset long, key binary, value binary, timestamp timestamp, legacy_event binary",
    )
    table = validation.parse_messages(frame).toArrow().sort_by("offset")
    return table, validation.judge(table, accept_v0)


@pytest.mark.slow
def test_stream_verdicts_and_reasons_are_the_python_validators(spark: Any) -> None:
    now = datetime.now(UTC)
    cases = [(n, raw, now) for n, raw in _schema_cases() + _factory_cases(400, 0.6, 23)]
    _, verdicts = _judge(spark, cases)
    expected = [events.validate_message(raw) for _, raw, _ in cases]
    got_valid = verdicts.valid.to_pylist()
    assert got_valid == [not e for e in expected]
    assert verdicts.errors == {i: e for i, e in enumerate(expected) if e}
    kinds = {validation.reason_code(e[0]) for e in expected if e}
    assert {"invalid_json", "unsupported_schema_version"} <= kinds and len(kinds) >= 8, kinds
    assert sum(got_valid) >= 100


@pytest.mark.slow
def test_canonical_path_accepts_only_valid_events_and_takes_the_producers(spark: Any) -> None:
    """Spark's proof of validity is never wrong, and it is what the producer's events get."""
    now = datetime.now(UTC)
    schema_cases = _schema_cases()
    factory = _factory_cases(600, 0.3, 5)
    table, verdicts = _judge(spark, [(n, raw, now) for n, raw in schema_cases + factory])
    canonical = table.column(validation.CANONICAL).to_pylist()
    raws = [raw for _, raw in schema_cases + factory]
    proven = [raw for raw, c in zip(raws, canonical, strict=True) if c]
    assert all(events.validate_message(raw) == [] and stock_valid(json.loads(raw)) for raw in proven)
    # The value rules matter: compact cases the Python validator rejects for a value alone (enum, range,
    # pattern …) survive the round trip, and only the rules turn them away.
    frame = spark.createDataFrame([(bytearray(raw),) for raw in raws], "value binary").withColumn(
        validation.JSON_COLUMN,
        F.from_json(F.col("value").cast("string"), events.spark_ddl(timestamps=False)),
    )
    round_trip = [r[0] for r in frame.selectExpr(validation.canonical_valid_sql(value_rules=False)).collect()]
    value_only = [name for (name, _), rt, c in zip(schema_cases + factory, round_trip, canonical, strict=True)
                  if rt and not c]  # fmt: skip
    assert {n for n in value_only if n.startswith("value-")} == {
        n for n, _ in schema_cases if n.startswith("value-") and n.endswith("-compact")
    }
    factory_valid = [
        c for (name, raw), c in zip(factory, canonical[len(schema_cases) :], strict=True)
        if not any(name.endswith(f"-{kind}") for kind in POISON_KINDS)
    ]  # fmt: skip
    assert len(factory_valid) > 300
    assert sum(factory_valid) == len(factory_valid), "the producer's own events missed the canonical path"
    assert verdicts.non_canonical == len(canonical) - sum(canonical)


@pytest.mark.slow
def test_typed_columns_hold_each_valid_events_values(spark: Any) -> None:
    """Every valid message, canonical or not, reads as its JSON says (checked against ``json.loads``)."""
    now = datetime.now(UTC)
    cases = [(n, raw, now) for n, raw in _schema_cases() + _factory_cases(200, 0.2, 9)]
    table, verdicts = _judge(spark, cases)
    rows = table.to_pylist()
    checked = 0
    for (name, raw, _), row, valid in zip(cases, rows, verdicts.valid.to_pylist(), strict=True):
        if not valid:
            continue
        event = json.loads(raw)
        known = events.load_schema(event[events.VERSION_FIELD])["properties"]
        for field in (f for f in validation.EVENT_COLUMNS if f in known):  # others are ignored
            want = event.get(field)
            got = row[field]
            if field == "producer":
                assert got["sequence"] == want["sequence"] and got["host"] == want["host"], name
                assert got["sent_at"] == datetime.fromisoformat(want["sent_at"]), name
            elif field == "event_time":
                assert got == datetime.fromisoformat(want), name
            elif field == events.VERSION_FIELD or not isinstance(want, dict):
                assert got == want, (name, field, got, want)
        checked += 1
    assert checked >= 150


@pytest.mark.slow
def test_events_dated_after_their_kafka_timestamp_are_rejected(spark: Any) -> None:
    factory = EventFactory(schema_version=2, seed=3)
    record = {
        k: v for k, v in VALID_V1.items() if k not in ("event_id", "schema_version", "event_time", "producer")
    }
    sent = time.time()
    aheads = (-600, 0, validation.FUTURE_TOLERANCE_S - 60, validation.FUTURE_TOLERANCE_S + 60, 86_400)
    cases = []
    for ahead_s in aheads:
        message = factory.build({**record, "event_time": utc_iso(sent + ahead_s)}, now=sent)
        cases.append((str(ahead_s), message.value, datetime.fromtimestamp(sent, UTC)))
    _, verdicts = _judge(spark, cases)
    for index, ahead_s in enumerate(aheads):
        too_far = ahead_s > validation.FUTURE_TOLERANCE_S
        assert verdicts.valid[index].as_py() is not too_far
        assert verdicts.errors.get(index) == ([validation.EVENT_IN_FUTURE] if too_far else None)
    assert validation.reason_code(validation.EVENT_IN_FUTURE) == "event_time_in_future"


def _legacy_cases(count: int) -> list[tuple[str, bytes, dict[str, Any] | None, datetime]]:
    """(name, message, its record when the record is a valid v0 event, event time) as the original
    producer wrote them, valid ones with NaN in nullable fields and rejected ones of every kind."""
    rng = random.Random(17)
    users, movies = list(CATALOG.user_ids), list(CATALOG.movie_ids)
    start = datetime(2025, 12, 1, 0, 47, 16, tzinfo=UTC)
    cases: list[tuple[str, bytes, dict[str, Any] | None, datetime]] = []
    broken = {
        "nan-required": {"is_download": NAN}, "infinity-required": {"action": INF},
        "no-timestamp": {"timestamp": ...}, "bad-timestamp": {"timestamp": "2025-13-01 00:00:00"},
        "half-star": {"user_rating": 2.5},
    }  # fmt: skip
    for i in range(count):
        moment = start + timedelta(seconds=7 * i)
        rec = legacy_record(rng, i, moment, users, movies)
        kind = list(broken)[i % len(broken)] if i % 4 == 3 else None
        if kind is not None:
            rec.update(broken[kind])
            rec = {k: v for k, v in rec.items() if v is not ...}
        cases.append((f"v0-{i}-{kind or 'valid'}", legacy_line(rec).encode(), None if kind else rec, moment))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("accept_v0", [True, False], ids=["v0-on", "strict"])
def test_legacy_events_are_read_as_their_records_say_or_rejected_with_the_validators_reasons(
    spark: Any, accept_v0: bool
) -> None:
    now = datetime.now(UTC)
    legacy = _legacy_cases(120)
    ours = _factory_cases(80, 0.3, 13)
    cases = [(n, raw, now) for n, raw, _, _ in legacy] + [(n, raw, now) for n, raw in ours]
    table, verdicts = _judge(spark, cases, accept_v0)
    expected = [events.validate_message(raw, accept_v0) for _, raw, _ in cases]
    assert verdicts.valid.to_pylist() == [not e for e in expected]
    assert verdicts.errors == {i: e for i, e in enumerate(expected) if e}
    valid_v0 = [rec is not None for _, _, rec, _ in legacy]
    assert verdicts.legacy_v0.to_pylist() == [accept_v0 and v for v in valid_v0] + [False] * len(ours)
    codes = Counter(validation.reason_code(e[0]) for e in expected[: len(legacy)] if e)
    if not accept_v0:
        assert codes == {"legacy_v0_disabled": len(legacy)}
        return
    assert set(codes) == {"missing_is_download", "missing_action", "missing_timestamp", "invalid_timestamp",
                          "invalid_user_rating"}  # fmt: skip
    # Valid v0 events are proven before the driver (no Python there) and read as their records say.
    canonical = table.column(validation.CANONICAL).to_pylist()
    assert all(c for c, v in zip(canonical, valid_v0, strict=False) if v)
    rows = table.to_pylist()
    for (name, _, rec, moment), row in zip(legacy, rows, strict=False):
        if rec is None:
            continue
        want = expected_event(rec, moment)
        got = {k: row[k] for k in want}
        got["event_time"] = got["event_time"].astimezone(UTC).replace(tzinfo=None)
        assert got == want, name
        assert not any((row["producer"] or {}).values()) and row["bitrate_kbps"] is None  # v0 has neither
        assert row["event_id"] == json.loads(legacy_v0.mapped_value(legacy_line(rec)))["event_id"]
