"""Checks of what Silver wrote, computed from the Parquet in the bucket rather than from the job's counters.

Re-reading the outputs (with DuckDB, see ``outputs``) is what makes the checks worth having: a lost
partition, a double write or a rule that leaks rows shows up here even if the job believed its numbers.
Each outcome carries the numbers and, when it fails, the offending values, so whoever is paged can see
what broke without opening Spark.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from core.contracts.silver import CONTRACTS, QUARANTINE_LINE, SOURCE_LINE
from silver.job import SilverJob, TableResult
from silver.outputs import WrittenTables, written_tables

TOP_OFFENDERS = 10
REASONS_SHOWN = 5
_RULES = {
    "malformed_row": "rule 1, wrong number of fields, unclosed quote or invalid UTF-8",
    "watch_duration_out_of_range": "rule 4, outside 0-1,440 minutes",
    "progress_out_of_range": "rule 5, outside 0-100 %",
    "orphan_user": "rule 6, user_id not in Silver users",
    "orphan_movie": "rule 7, movie_id not in Silver movies",
    "duplicate_row": "rule 8, exact copy of an earlier row",
    "duplicate_key": "rule 9, key held by a fuller or earlier row",
}
ROW_ACCOUNTING = "row_accounting"
UNIQUE_KEY = "unique_key"
REFERENTIAL_INTEGRITY = "referential_integrity"
QUARANTINE_SHARE = "quarantine_share"
ALL_CHECKS = (ROW_ACCOUNTING, UNIQUE_KEY, REFERENTIAL_INTEGRITY, QUARANTINE_SHARE)


class Severity(StrEnum):
    WARN = "WARN"
    ERROR = "ERROR"


@dataclass
class CheckOutcome:
    """A check's verdict in plain data, turned into a Dagster AssetCheckResult by the asset."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.ERROR


def row_accounting(tables: WrittenTables, result: TableResult) -> CheckOutcome:
    """raw rows = Silver rows + quarantine rows, and every record's first line appears exactly once.

    The records are lines 2..last_line, except the lines a multi-line record continues onto.
    """
    contract = CONTRACTS[result.table]
    lines = (
        f"SELECT {SOURCE_LINE} AS line, 1 AS silver FROM {tables.silver(contract)} "
        f"UNION ALL SELECT {QUARANTINE_LINE}, 0 FROM {tables.quarantine(contract)}"
    )
    spans = _register_spans(tables, result)
    continuation = f"EXISTS (SELECT 1 FROM {spans} WHERE line > first_line AND line <= last_line)"
    [stats] = tables.rows(
        f"SELECT count(*) AS n, coalesce(sum(silver), 0) AS silver, count(DISTINCT line) AS distinct_lines, "
        f"count(*) FILTER (WHERE line < 2 OR line > {result.last_line} OR {continuation}) AS strays "
        f"FROM ({lines})"
    )
    raw, silver = result.raw_rows, int(stats["silver"])
    quarantined = int(stats["n"]) - silver
    metadata: dict[str, Any] = {
        "raw_rows": raw,
        "silver_rows": silver,
        "quarantine_rows": quarantined,
        "difference": raw - silver - quarantined,
        "distinct_lines": int(stats["distinct_lines"]),
        "multiline_records": len(result.multiline_records),
    }
    if stats["n"] == raw and stats["distinct_lines"] == raw and stats["strays"] == 0:
        description = f"{raw:,} raw rows = {silver:,} Silver + {quarantined:,} quarantined"
        return CheckOutcome(ROW_ACCOUNTING, True, description, metadata)
    repeated = tables.rows(
        f"SELECT line FROM ({lines}) GROUP BY line HAVING count(*) > 1 ORDER BY line LIMIT {TOP_OFFENDERS}"
    )
    missing = tables.rows(
        f"SELECT range AS line FROM range(2, {result.last_line + 1}) "
        f"WHERE range NOT IN (SELECT line FROM ({lines})) "
        f"AND NOT EXISTS (SELECT 1 FROM {spans} WHERE range > first_line AND range <= last_line) "
        f"ORDER BY line LIMIT {TOP_OFFENDERS}"
    )
    metadata["lines_written_twice"] = [int(r["line"]) for r in repeated]
    metadata["lines_missing"] = [int(r["line"]) for r in missing]
    description = (
        f"{result.raw_uri}: {raw:,} raw rows but {silver:,} in Silver + {quarantined:,} quarantined "
        f"(difference {metadata['difference']:+,}); first missing lines {metadata['lines_missing']}, "
        f"first lines written more than once {metadata['lines_written_twice']}"
    )
    return CheckOutcome(ROW_ACCOUNTING, False, description, metadata)


def _register_spans(tables: WrittenTables, result: TableResult) -> str:
    """The table's multi-line records as a DuckDB relation ``(first_line, last_line)``; its name."""
    name = f"multiline_{result.table}"
    spans = result.multiline_records
    tables.con.register(
        name,
        pa.table(
            {
                "first_line": pa.array([first for first, _ in spans], pa.int64()),
                "last_line": pa.array([last for _, last in spans], pa.int64()),
            }
        ),
    )
    return name


def unique_key(tables: WrittenTables, result: TableResult) -> CheckOutcome:
    contract = CONTRACTS[result.table]
    key = contract.key
    repeated = (
        f"SELECT {key}, count(*) AS n FROM {tables.silver(contract)} GROUP BY {key} HAVING count(*) > 1"
    )
    top = tables.rows(f"SELECT * FROM ({repeated}) ORDER BY n DESC, {key} LIMIT {TOP_OFFENDERS}")
    if not top:
        return CheckOutcome(
            UNIQUE_KEY, True, f"{key} is unique in Silver {result.table}", {"duplicated_keys": 0}
        )
    total = int(tables.scalar(f"SELECT count(*) FROM ({repeated})"))
    offenders = {str(row[key]): int(row["n"]) for row in top}
    return CheckOutcome(
        UNIQUE_KEY,
        False,
        f"{total:,} {key} values occur more than once in {result.silver_uri}, e.g. {offenders}",
        {"duplicated_keys": total, "top_duplicated_keys": offenders},
    )


def referential_integrity(tables: WrittenTables, result: TableResult) -> CheckOutcome:
    """Every user_id / movie_id of a fact exists in Silver users / movies as written in the bucket."""
    contract = CONTRACTS[result.table]
    metadata: dict[str, Any] = {}
    problems: list[str] = []
    for ref in contract.references:
        dimension = CONTRACTS[ref.table]
        orphans = (
            f"SELECT f.{ref.column}, count(*) AS n FROM {tables.silver(contract)} AS f "
            f"ANTI JOIN {tables.silver(dimension)} AS d ON f.{ref.column} = d.{dimension.key} GROUP BY ALL"
        )
        top = tables.rows(f"SELECT * FROM ({orphans}) ORDER BY n DESC, 1 LIMIT {TOP_OFFENDERS}")
        rows = int(tables.scalar(f"SELECT coalesce(sum(n), 0) FROM ({orphans})")) if top else 0
        metadata[f"orphan_{ref.column}_rows"] = rows
        if top:
            offenders = {str(row[ref.column]): int(row["n"]) for row in top}
            metadata[f"top_orphan_{ref.column}"] = offenders
            problems.append(
                f"{rows:,} rows with a {ref.column} missing from Silver {ref.table}, e.g. {offenders}"
            )
    if problems:
        return CheckOutcome(
            REFERENTIAL_INTEGRITY, False, f"{result.silver_uri}: " + "; ".join(problems), metadata
        )
    columns = " and ".join(ref.column for ref in contract.references)
    return CheckOutcome(REFERENTIAL_INTEGRITY, True, f"every {columns} exists in Silver", metadata)


def quarantine_share(result: TableResult, warn_share: float, error_share: float) -> CheckOutcome:
    """Quarantined / raw rows: WARN above ``warn_share``, ERROR above ``error_share``.

    The description names each rule that rejected rows, how many, and three of the values it rejected,
    so whoever is paged sees at once whether it is a format problem or genuine dirt.
    """
    share = result.quarantine_share
    metadata: dict[str, Any] = {
        "quarantine_share": round(share, 6),
        "quarantine_rows": result.quarantine_rows,
        "raw_rows": result.raw_rows,
        "warn_share": warn_share,
        "error_share": error_share,
        "by_reason": result.reasons,
        "examples": {reason: [f"line {line}: {text!r}" for line, text in found]
                     for reason, found in result.examples.items()},
    }  # fmt: skip
    rejected = "; ".join(
        _rejection(reason, count, result.examples.get(reason, []))
        for reason, count in list(result.reasons.items())[:REASONS_SHOWN]
    )
    counts = f"{result.quarantine_rows:,} of {result.raw_rows:,} rows"
    summary = f"{share:.2%} of {result.raw_uri} quarantined ({counts})" + (
        f": {rejected}" if rejected else ""
    )
    if share > error_share:
        return CheckOutcome(QUARANTINE_SHARE, False, f"{summary}. Above the error limit {error_share:.0%}",
                            metadata)  # fmt: skip
    if share > warn_share:
        return CheckOutcome(
            QUARANTINE_SHARE,
            False,
            f"{summary}. Above the warn limit {warn_share:.0%}",
            metadata,
            Severity.WARN,
        )
    return CheckOutcome(QUARANTINE_SHARE, True, summary, metadata)


def _rejection(reason: str, count: int, examples: list[tuple[int, str | None]]) -> str:
    """``invalid_created_at (rule 3, value not in its type's notation): 10,300 rows, e.g. line 2 '…'``."""
    shown = ", ".join(
        f"line {line} {text!r}" if text is not None else f"line {line}" for line, text in examples
    )
    return f"{reason} ({rule_of(reason)}): {count:,} rows" + (f", e.g. {shown}" if shown else "")


def rule_of(reason: str) -> str:
    """The rule of docs/data-quality.md behind a quarantine reason, in a few words."""
    if reason.startswith("missing_"):
        return "rule 2, required value missing"
    if reason.startswith("invalid_"):
        return "rule 3, value not in the documented notation of its type"
    return _RULES.get(reason, "unknown rule")


def verify_table(
    tables: WrittenTables,
    result: TableResult,
    warn_share: float,
    error_share: float,
    names: Collection[str] = ALL_CHECKS,
) -> list[CheckOutcome]:
    """The checks of one table (those in ``names``), accounting first: it is the one that must block."""
    outcomes = []
    if ROW_ACCOUNTING in names:
        outcomes.append(row_accounting(tables, result))
    if UNIQUE_KEY in names:
        outcomes.append(unique_key(tables, result))
    if REFERENTIAL_INTEGRITY in names and CONTRACTS[result.table].references:
        outcomes.append(referential_integrity(tables, result))
    if QUARANTINE_SHARE in names:
        outcomes.append(quarantine_share(result, warn_share, error_share))
    return outcomes


def run_and_verify(
    job: SilverJob,
    table: str,
    warn_share: float,
    error_share: float,
    names: Collection[str] = ALL_CHECKS,
) -> tuple[TableResult, list[CheckOutcome]]:
    """Build one table and check what was written: the unit of work of the asset and of the timing helper."""
    result = job.run_table(table)
    with written_tables(job.bucket) as tables:
        return result, verify_table(tables, result, warn_share, error_share, names)
