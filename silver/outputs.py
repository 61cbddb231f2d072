"""Reading what Silver wrote, with DuckDB instead of Spark.

Counting rows, grouping reasons and probing keys of a few million Parquet rows takes DuckDB
milliseconds, while each Spark job costs a scheduling round trip and, early in a session, seconds of code
generation and JIT warm-up. Reading the output with a second engine also makes the checks independent
of the job they check. GCS buckets are reached through the bucket's own fsspec filesystem.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from core.bucket import Bucket
from core.contracts.silver import (
    QUARANTINE_LINE,
    QUARANTINE_RAW_LINE,
    QUARANTINE_VALUE,
    REASON,
    TableContract,
)
from core.warehouse import sql_literal

EXAMPLE_CHARACTERS = 120  # of a raw line shown as an example


class WrittenTables:
    """SQL access to ``silver/<table>/`` and ``quarantine/<table>/`` of one bucket."""

    def __init__(self, bucket: Bucket, con: duckdb.DuckDBPyConnection) -> None:
        self.bucket = bucket
        self.con = con

    def _glob(self, key: str) -> str:
        return self.bucket.uri(key).rstrip("/") + "/**/*.parquet"

    def silver(self, contract: TableContract, hive: bool = False) -> str:
        """A FROM-clause source of the table's Silver Parquet."""
        glob = sql_literal(self._glob(contract.silver_key))
        return f"read_parquet({glob}, hive_partitioning = {str(hive).lower()}, union_by_name = true)"

    def quarantine(self, contract: TableContract) -> str:
        return f"read_parquet({sql_literal(self._glob(contract.quarantine_key))}, hive_partitioning = false)"

    def rows(self, sql: str) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scalar(self, sql: str) -> Any:
        rows = self.con.execute(sql).fetchall()  # fetchone() would leave the result open (DuckDB 2.0)
        return rows[0][0] if rows else None

    def silver_count(self, contract: TableContract) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {self.silver(contract)}"))

    def reasons(self, contract: TableContract) -> dict[str, int]:
        """Quarantined rows by reason, most frequent first."""
        rows = self.con.execute(
            f"SELECT {REASON}, count(*) FROM {self.quarantine(contract)} GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall()
        return {str(reason): int(count) for reason, count in rows}

    def keys(self, contract: TableContract) -> list[str]:
        """Every key of the table's Silver (unique there: its check passed before anyone asks)."""
        return [
            row[0]
            for row in self.con.execute(f"SELECT {contract.key} FROM {self.silver(contract)}").fetchall()
        ]

    def examples(self, contract: TableContract, per_reason: int) -> dict[str, list[tuple[int, str | None]]]:
        """The first ``per_reason`` quarantined (line, text) of each reason: the judged value, or for a
        row without one (malformed, missing field) the start of its raw line."""
        rows = self.con.execute(
            f"""
            SELECT {REASON}, {QUARANTINE_LINE},
                   coalesce({QUARANTINE_VALUE}, left({QUARANTINE_RAW_LINE}, {EXAMPLE_CHARACTERS}))
            FROM {self.quarantine(contract)}
            QUALIFY row_number() OVER (PARTITION BY {REASON} ORDER BY {QUARANTINE_LINE}) <= {int(per_reason)}
            ORDER BY 1, 2
            """
        ).fetchall()
        found: dict[str, list[tuple[int, str | None]]] = {}
        for reason, line, text in rows:
            found.setdefault(str(reason), []).append((int(line), text))
        return found

    def preview(self, contract: TableContract, limit: int) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM {self.silver(contract, hive=True)} LIMIT {int(limit)}")


@contextmanager
def written_tables(bucket: Bucket) -> Iterator[WrittenTables]:
    """An in-memory DuckDB that can read the bucket (local paths, or gs:// through fsspec)."""
    con = duckdb.connect()
    try:
        if bucket.is_gcs:
            con.register_filesystem(bucket.fs)
        yield WrittenTables(bucket, con)
    finally:
        con.close()
