"""An independent reference for the batch layer: docs/data-quality.md and every mart, in plain DuckDB SQL.

It reads the raw CSVs straight from the bucket and shares no code with the Spark Silver job
(``silver/``) or the dbt project: only the contract's domain lists (``core/contracts/raw.py``) and
the written rules. The correctness test compares the dbt marts (built on the real Spark Silver) with the
marts computed here, and ``bench/bench_batch.py`` uses it as the "plain DuckDB from the CSVs" baseline.

Reading follows the documented line model, not DuckDB's CSV dialect: every physical line after the
header is one row, numbered by its position in the file, and split into fields here. DuckDB's CSV
reader would join lines across an unclosed quote and skips or reorders rows it cannot decode, so each
file is read as single-column text (quote and escape disabled) and a streamed byte pass checks that
DuckDB produced exactly one row per line; a file with invalid UTF-8 is first copied with the bad bytes
decoded to U+FFFD, as the documented reader does.
"""

from __future__ import annotations

import codecs
import gzip
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from core.contracts.raw import (
    ACTIONS,
    CONTENT_TYPES,
    COUNTRIES,
    DEVICES,
    GENDERS,
    GENRES,
    QUALITIES,
    RAW_COLUMNS,
    STATES,
    SUBSCRIPTION_PLANS,
)

# -- the contract, transcribed from docs/data-quality.md ---------------------------------------------
TYPES: dict[str, dict[str, str]] = {
    "users": {"age": "INT", "household_size": "INT", "monthly_spend": "DOUBLE", "is_active": "BOOLEAN",
              "subscription_start_date": "DATE", "created_at": "TIMESTAMP"},
    "movies": {"release_year": "INT", "number_of_seasons": "INT", "number_of_episodes": "INT",
               "duration_minutes": "DOUBLE", "imdb_rating": "DOUBLE", "production_budget": "DOUBLE",
               "box_office_revenue": "DOUBLE", "is_netflix_original": "BOOLEAN", "content_warning": "BOOLEAN",
               "added_to_platform": "DATE"},
    "watch_history": {"user_rating": "INT", "watch_duration_minutes": "DOUBLE",
                      "progress_percentage": "DOUBLE", "is_download": "BOOLEAN", "watch_date": "DATE"},
    "reviews": {"rating": "INT", "helpful_votes": "INT", "total_votes": "INT", "sentiment_score": "DOUBLE",
                "is_verified_watch": "BOOLEAN", "review_date": "DATE"},
    "search_logs": {"results_returned": "INT", "clicked_result_position": "INT",
                    "search_duration_seconds": "DOUBLE", "had_typo": "BOOLEAN", "used_filters": "BOOLEAN",
                    "search_date": "DATE"},
    "recommendation_logs": {"position_in_list": "INT", "recommendation_score": "DOUBLE",
                            "was_clicked": "BOOLEAN", "recommendation_date": "DATE"},
}  # fmt: skip
REQUIRED: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "movies": ("movie_id",),
    "watch_history": ("session_id", "user_id", "movie_id", "watch_date"),
    "reviews": ("review_id", "user_id", "movie_id", "review_date"),
    "search_logs": ("search_id", "user_id", "search_date"),
    "recommendation_logs": ("recommendation_id", "user_id", "movie_id", "recommendation_date"),
}
KEYS: dict[str, str] = {table: columns[0] for table, columns in RAW_COLUMNS.items()}
ORPHAN_RULES: tuple[tuple[str, str, str], ...] = (
    ("user_id", "users", "orphan_user"),
    ("movie_id", "movies", "orphan_movie"),
)
ENUMS: dict[str, tuple[str, ...]] = {
    "gender": GENDERS, "country": COUNTRIES, "location_country": COUNTRIES,
    "state_province": tuple(s for states in STATES.values() for s in states),
    "subscription_plan": SUBSCRIPTION_PLANS, "primary_device": DEVICES, "device_type": DEVICES,
    "content_type": CONTENT_TYPES, "genre_primary": GENRES, "genre_secondary": GENRES, "quality": QUALITIES,
    "action": ACTIONS,
}  # fmt: skip
TABLES: tuple[str, ...] = (
    "users",
    "movies",
    "watch_history",
    "reviews",
    "search_logs",
    "recommendation_logs",
)
UNKNOWN = "Unknown"

# Grain of every mart: the columns that identify a row (used to align reference and dbt rows).
MART_KEYS: dict[str, tuple[str, ...]] = {
    "monthly_engagement": ("year", "month", "country", "subscription_plan"),
    "cohort_retention": ("cohort_month", "activity_month"),
    "content_performance": ("year", "month", "genre_primary"),
    "content_performance_by_title": ("movie_id",),
    "genre_performance": ("genre_primary",),
    "monthly_active_users": ("year", "month"),
    "monthly_active_users_by_segment": ("year", "month", "country", "subscription_plan"),
}

_DELIMITER_CANDIDATES = (b"\x1f", b"\x1e", b"\x1d", b"\x1c", b"\x01", b"\x02")
_CHUNK = 8 << 20
_CR_STANDIN = "\ue000"  # a private-use character standing in for a lone "\r" while DuckDB reads lines
MAX_RECORD_LINES = 100  # lines a record with a quoted line break may span
NULL_TOKENS = ("NaN", "nan", "NULL", "null", "None")


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- reading: lines, then records ----------------------------------------------------------------------
def raw_file(raw_dir: Path, table: str) -> Path:
    """``<table>.csv`` or ``<table>.csv.gz`` (one of them; both is an error, as in the pipeline)."""
    found = [
        raw_dir / f"{table}{suffix}"
        for suffix in (".csv", ".csv.gz")
        if (raw_dir / f"{table}{suffix}").exists()
    ]
    if len(found) != 1:
        raise ValueError(f"{raw_dir}: expected exactly one of {table}.csv, {table}.csv.gz; found {found}")
    return found[0]


def _text(path: Path) -> Iterator[bytes]:
    """The file's text bytes, gunzipped for ``.gz``."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


class _ByteScan:
    """What one streamed pass over the file's text tells: line count, a free delimiter, UTF-8 validity,
    whether it holds a carriage return (DuckDB's line reader would break lines there)."""

    def __init__(self, path: Path) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")()
        unseen = set(_DELIMITER_CANDIDATES)
        self.newlines = 0
        self.valid_utf8 = True
        self.has_cr = False
        size, last = 0, b""
        for chunk in _text(path):
            size += len(chunk)
            self.newlines += chunk.count(b"\n")
            self.has_cr = self.has_cr or b"\r" in chunk
            unseen -= {c for c in unseen if c in chunk}
            last = chunk[-1:]
            if self.valid_utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    self.valid_utf8 = False
        if self.valid_utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.valid_utf8 = False
        self.lines = self.newlines + (1 if size and last != b"\n" else 0)
        free = [c for c in _DELIMITER_CANDIDATES if c in unseen]
        if not free:
            raise ValueError(
                f"{path}: every candidate delimiter byte occurs in the file; cannot read it as lines"
            )
        self.delimiter = free[0].decode()


@contextmanager
def _readable_copy(path: Path, scan: _ByteScan) -> Iterator[Path]:
    """The file itself when DuckDB can read its lines as they are; else a plain-text copy where CR LF is
    LF, a lone CR is :data:`_CR_STANDIN` (put back after reading) and invalid bytes are U+FFFD."""
    if scan.valid_utf8 and not scan.has_cr and not path.name.endswith(".gz"):
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "lines.txt"
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with copy.open("w", encoding="utf-8", newline="") as dst:
            held = b""
            for chunk in _text(path):
                chunk, held = held + chunk, b""
                if chunk.endswith(b"\r"):  # its "\n" may start the next chunk
                    chunk, held = chunk[:-1], b"\r"
                dst.write(decoder.decode(chunk.replace(b"\r\n", b"\n").replace(b"\r", _CR_STANDIN.encode())))
            dst.write(decoder.decode(held.replace(b"\r", _CR_STANDIN.encode()), final=True))
        yield copy


def load_lines(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """``lines_<table>(line_no, line)``: the header (line 1) and every data record, numbered by its first
    line; a blank line is NULL (docs/data-quality.md, "Reading")."""
    scan = _ByteScan(path)
    with _readable_copy(path, scan) as readable:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE physical_{table} AS
            SELECT ordinality AS line_no, replace(line, {_lit(_CR_STANDIN)}, chr(13)) AS line
            FROM read_csv({_lit(str(readable))}, header = false, columns = {{'line': 'VARCHAR'}},
                          delim = {_lit(scan.delimiter)}, quote = '', escape = '', new_line = '\\n',
                          auto_detect = false, strict_mode = false) WITH ORDINALITY
            """
        )
    [(read, last)] = con.execute(
        f"SELECT count(*), coalesce(max(line_no), 0) FROM physical_{table}"
    ).fetchall()
    if read != scan.lines or last != scan.lines:
        raise ValueError(f"{path}: DuckDB read {read} lines (last #{last}) but the file has {scan.lines}")
    header = next(iter(con.execute(f"SELECT line FROM physical_{table} WHERE line_no = 1").fetchall()), None)
    found = [name.strip() for name in (header[0] if header and header[0] else "").lstrip("\ufeff").split(",")]
    if found != list(RAW_COLUMNS[table]):
        raise ValueError(f"{path}: header {found} is not the contract's {list(RAW_COLUMNS[table])}")
    _assemble_records(con, table)


def _fields(con: duckdb.DuckDBPyConnection, table: str, first: int, last: int) -> int | None:
    """Fields of lines first..last joined by newlines: 1 + commas outside "…" sections (None: a quote
    is left open)."""
    [(count,)] = con.execute(
        f"""
        WITH joined AS (
            SELECT regexp_replace(
                       string_agg(coalesce(line, ''), chr(10) ORDER BY line_no), '"[^"]*"', '', 'g'
                   ) AS o
            FROM physical_{table} WHERE line_no BETWEEN {first} AND {last}
        )
        SELECT CASE WHEN contains(o, '"') THEN NULL ELSE length(o) - length(replace(o, ',', '')) + 1 END
        FROM joined
        """
    ).fetchall()
    return count


def _assemble_records(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Records from physical lines: trailing blank lines dropped, a quoted field's lines joined."""
    [(last,)] = con.execute(
        f"SELECT coalesce(max(line_no), 1) FROM physical_{table} "
        f"WHERE trim(coalesce(line, ''), ' ' || chr(9) || chr(13)) <> ''"
    ).fetchall()
    odd = [
        line_no
        for (line_no,) in con.execute(
            f"SELECT line_no FROM physical_{table} WHERE line_no BETWEEN 2 AND {last} "
            "AND (length(line) - length(replace(line, '\"', ''))) % 2 = 1 ORDER BY line_no"
        ).fetchall()
    ]
    spans: list[tuple[int, int]] = []
    width = len(RAW_COLUMNS[table])
    i = 0
    while i < len(odd):
        first, partner = odd[i], odd[i + 1] if i + 1 < len(odd) else None
        near = partner is not None and partner - first < MAX_RECORD_LINES
        if near and _fields(con, table, first, partner) == width:
            spans.append((first, partner))
            i += 2
            continue
        i += 1
    con.execute(f"CREATE OR REPLACE TEMP TABLE spans_{table} (first_line BIGINT, last_line BIGINT)")
    if spans:
        con.executemany(f"INSERT INTO spans_{table} VALUES (?, ?)", spans)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE lines_{table} AS
        SELECT line_no, line FROM physical_{table} WHERE line_no = 1
        UNION ALL
        SELECT p.line_no, p.line FROM physical_{table} AS p
        WHERE p.line_no BETWEEN 2 AND {last}
          AND NOT EXISTS (SELECT 1 FROM spans_{table} WHERE p.line_no BETWEEN first_line AND last_line)
        UNION ALL
        SELECT s.first_line, string_agg(coalesce(p.line, ''), chr(10) ORDER BY p.line_no)
        FROM spans_{table} AS s JOIN physical_{table} AS p ON p.line_no BETWEEN s.first_line AND s.last_line
        GROUP BY s.first_line
        """
    )
    con.execute(f"DROP TABLE physical_{table}; DROP TABLE spans_{table}")


# -- the row and value rules ---------------------------------------------------------------------------
_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
# A timestamp: date, T or space, a valid wall time, a fraction up to microseconds, an optional zone.
_STAMP = (f"({_DAY})[T ](([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,6}})?)"
          "(Z|([+-])([0-9]{2}):?([0-9]{2})?)?")  # fmt: skip


def _utc(text: str) -> str:
    """DuckDB expression: a timestamp in the documented notation as UTC wall time, NULL otherwise."""

    def part(group: int) -> str:
        return f"regexp_extract({text}, '^{_STAMP}$', {group})"

    def number(group: int) -> str:
        return f"coalesce(TRY_CAST(nullif({part(group)}, '') AS INT), 0)"

    minutes = f"CASE WHEN {part(6)} = '-' THEN -1 ELSE 1 END * ({number(7)} * 60 + {number(8)})"
    valid = f"regexp_full_match({text}, '{_STAMP}') AND abs({minutes}) <= 18 * 60 AND {number(8)} < 60"
    local = f"TRY_CAST({part(1)} || ' ' || {part(2)} AS TIMESTAMP)"
    return f"CASE WHEN {valid} THEN {local} - {minutes} * INTERVAL 1 MINUTE END"


def _parse(kind: str, text: str) -> str:
    """DuckDB expression: the typed value of cleaned text, NULL when it is not in the documented notation."""
    if kind == "INT":
        return (f"CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+(\\.0*)?') "
                f"THEN TRY_CAST(regexp_replace({text}, '\\.0*$', '') AS INTEGER) END")  # fmt: skip
    if kind == "DOUBLE":
        return (f"CASE WHEN regexp_full_match({text}, '[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)') "
                f"THEN TRY_CAST({text} AS DOUBLE) END")  # fmt: skip
    if kind == "BOOLEAN":
        return (f"CASE WHEN lower({text}) IN ('true', 't', 'yes', 'y', '1') THEN true "
                f"WHEN lower({text}) IN ('false', 'f', 'no', 'n', '0') THEN false END")  # fmt: skip
    if kind == "DATE":
        # The date as written; a time part, if any, must be a valid timestamp.
        return (f"CASE WHEN regexp_full_match({text}, '{_DAY}') THEN TRY_CAST({text} AS DATE) "
                f"WHEN {_utc(text)} IS NOT NULL THEN TRY_CAST(left({text}, 10) AS DATE) END")  # fmt: skip
    if kind == "TIMESTAMP":
        return _utc(text)
    raise ValueError(kind)


def _canonical(column: str, value: str) -> str:
    domain = ENUMS.get(column)
    if not domain:
        return value
    cases = " ".join(f"WHEN {_lit(v.lower())} THEN {_lit(v)}" for v in domain)
    return f"coalesce(CASE lower({value}) {cases} END, {value})"


def classify(con: duckdb.DuckDBPyConnection, table: str, source: str | None = None) -> None:
    """``classified_<table>``: each record's cleaned text, typed values and the reason of rules 1-7;
    ``duplicates_<table>``: the records rules 8-9 reject. Both keyed by ``line_no`` (the first line).
    ``source``: the bucket key written as the source file (default ``raw/<table>.csv``)."""
    columns = RAW_COLUMNS[table]
    n = len(columns)
    types = TYPES[table]
    # Fields: 1 + commas outside closed double-quoted sections; a quote left over is an unclosed one.
    shape = f"""
        SELECT line_no, line,
               coalesce(line, '') LIKE '%\ufffd%' AS bad_bytes,
               CASE WHEN contains(coalesce(line, ''), '"')
                    THEN regexp_replace(coalesce(line, ''), '"[^"]*"', '', 'g')
                    ELSE coalesce(line, '') END AS outside
        FROM lines_{table} WHERE line_no > 1
    """
    parts = f"""
        SELECT line_no,
               CASE WHEN length(outside) - length(replace(outside, ',', '')) + 1 = {n}
                         AND NOT contains(outside, '"') AND NOT bad_bytes THEN
                    CASE WHEN contains(line, '"')
                         THEN list_transform(
                             regexp_extract_all(line, '(?:^|,)("(?:[^"]|"")*"|[^,]*)', 1),
                             lambda f: CASE WHEN length(f) >= 2 AND starts_with(f, '"') AND ends_with(f, '"')
                                            THEN replace(f[2:-2], '""', '"') ELSE f END)
                         ELSE string_split(line, ',') END
               END AS parts
        FROM ({shape})
    """
    nulls = ", ".join(_lit(token) for token in ("", *NULL_TOKENS))
    texts = ", ".join(
        f"CASE WHEN trim(parts[{i + 1}]) NOT IN ({nulls}) THEN trim(parts[{i + 1}]) END AS t_{i}"
        for i in range(n)
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE texts_{table} AS "
        f"SELECT line_no, parts IS NULL AS malformed, {texts} FROM ({parts})"
    )

    t = {c: f"t_{i}" for i, c in enumerate(columns)}
    value = {c: (f"v_{columns.index(c)}" if c in types else t[c]) for c in columns}
    typed = ", ".join(f"{_parse(kind, t[c])} AS v_{columns.index(c)}" for c, kind in types.items())
    reasons = ["WHEN malformed THEN 'malformed_row'"]
    reasons += [f"WHEN {t[c]} IS NULL THEN 'missing_{c}'" for c in REQUIRED[table]]
    reasons += [
        f"WHEN {t[c]} IS NOT NULL AND {value[c]} IS NULL THEN 'invalid_{c}'" for c in columns if c in types
    ]
    if table == "watch_history":
        d, p = value["watch_duration_minutes"], value["progress_percentage"]
        reasons.append(f"WHEN {d} < 0 OR {d} > 1440 THEN 'watch_duration_out_of_range'")
        reasons.append(f"WHEN {p} < 0 OR {p} > 100 THEN 'progress_out_of_range'")
    joins = []
    if table not in ("users", "movies"):
        for column, dimension, reason in ORPHAN_RULES:
            if column in columns:
                joins.append(f"LEFT JOIN (SELECT {column} AS known_{column} FROM silver_{dimension}) "
                             f"ON {t[column]} = known_{column}")  # fmt: skip
                reasons.append(f"WHEN known_{column} IS NULL THEN '{reason}'")
    non_null = " + ".join(f"({t[c]} IS NOT NULL)::INT" for c in columns)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE classified_{table} AS
        SELECT line_no, {", ".join(t.values())}, {", ".join(value[c] for c in types)},
               CASE {" ".join(reasons)} END AS early_reason, {non_null} AS non_null_fields
        FROM (SELECT *, {typed} FROM texts_{table} {" ".join(joins)})
        """
    )
    con.execute(f"DROP TABLE texts_{table}")
    # Rules 8-9 only concern rows sharing a key with another row that passed 1-7: a few percent.
    key, all_texts = t[KEYS[table]], ", ".join(t.values())
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE duplicates_{table} AS
        WITH candidates AS (
            SELECT * FROM classified_{table}
            WHERE early_reason IS NULL AND {key} IN (
                SELECT {key} FROM classified_{table} WHERE early_reason IS NULL
                GROUP BY {key} HAVING count(*) > 1
            )
        ),
        exact AS (
            SELECT *, row_number() OVER (PARTITION BY {all_texts} ORDER BY line_no) > 1 AS repeated_row
            FROM candidates
        ),
        keyed AS (
            SELECT line_no, row_number() OVER (PARTITION BY {key} ORDER BY non_null_fields DESC, line_no) > 1
                   AS repeated_key
            FROM exact WHERE NOT repeated_row
        )
        SELECT line_no, 'duplicate_row' AS reason FROM exact WHERE repeated_row
        UNION ALL
        SELECT line_no, 'duplicate_key' FROM keyed WHERE repeated_key
        """
    )
    _write_silver(con, table, value, source or f"raw/{table}.csv")


def _judged(table: str) -> str:
    """DuckDB expression: the text a rule judged (``rejected_value``), from the reason (data-quality.md)."""
    columns = RAW_COLUMNS[table]
    t = {c: f"c.t_{i}" for i, c in enumerate(columns)}
    cases = [f"WHEN 'invalid_{c}' THEN {t[c]}" for c in columns if c in TYPES[table]]
    if table == "watch_history":
        cases += [f"WHEN 'watch_duration_out_of_range' THEN {t['watch_duration_minutes']}",
                  f"WHEN 'progress_out_of_range' THEN {t['progress_percentage']}"]  # fmt: skip
    if table not in ("users", "movies"):
        cases += [
            f"WHEN '{reason}' THEN {t[column]}" for column, _, reason in ORPHAN_RULES if column in columns
        ]
    cases += [f"WHEN '{reason}' THEN {t[KEYS[table]]}" for reason in ("duplicate_row", "duplicate_key")]
    return f"CASE coalesce(c.early_reason, d.reason) {' '.join(cases)} END"


def _write_silver(con: duckdb.DuckDBPyConnection, table: str, value: dict[str, str], source: str) -> None:
    """``silver_<table>`` (value rules applied, Silver types) and ``quarantine_<table>``."""
    columns = RAW_COLUMNS[table]
    types = {
        "INT": "INTEGER",
        "DOUBLE": "DOUBLE",
        "BOOLEAN": "BOOLEAN",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMP",
    }
    select = []
    for c in columns:
        expr = _canonical(c, value[c])
        if table == "users" and c == "age":
            expr = f"CASE WHEN {expr} BETWEEN 5 AND 110 THEN {expr} END"
        if (table, c) in (("watch_history", "user_rating"), ("reviews", "rating")):
            expr = f"CASE WHEN {expr} BETWEEN 1 AND 5 THEN {expr} END"
        kind = types.get(TYPES[table].get(c, ""), "VARCHAR")
        select.append(f"CAST({expr} AS {kind}) AS {_q(c)}")
    if table == "users":
        age, spend = value["age"], value["monthly_spend"]
        select.append(f"coalesce(NOT ({age} BETWEEN 5 AND 110), false) AS age_flagged")
        select.append(f"coalesce({spend} < 0 OR {spend} > 1000, false) AS monthly_spend_flagged")
    if table == "watch_history":
        select.append(f"strftime({value['watch_date']}, '%Y-%m') AS watch_month")
    select.append(f"{_lit(source)} AS _source_file")
    select.append("CAST(line_no AS BIGINT) AS _source_line")
    con.execute(
        f"CREATE OR REPLACE TABLE silver_{table} AS SELECT {', '.join(select)} FROM classified_{table} "
        f"WHERE early_reason IS NULL AND line_no NOT IN (SELECT line_no FROM duplicates_{table})"
    )
    raw = ", ".join(f"c.t_{i} AS {_q(c)}" for i, c in enumerate(columns))
    con.execute(
        f"""
        CREATE OR REPLACE TABLE quarantine_{table} AS
        SELECT {raw}, coalesce(c.early_reason, d.reason) AS reason, {_judged(table)} AS rejected_value,
               {_lit(source)} AS source_file, c.line_no AS line_number, l.line AS raw_line
        FROM classified_{table} AS c
        LEFT JOIN duplicates_{table} AS d USING (line_no)
        JOIN lines_{table} AS l USING (line_no)
        WHERE c.early_reason IS NOT NULL OR d.reason IS NOT NULL
        """
    )


def build_silver(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> dict[str, dict[str, int]]:
    """Silver and quarantine of all six tables (dimensions first); returns rows per outcome and table."""
    counts: dict[str, dict[str, int]] = {}
    for table in TABLES:
        path = raw_file(raw_dir, table)
        load_lines(con, table, path)
        classify(con, table, f"raw/{path.name}")
        [(silver,)] = con.execute(f"SELECT count(*) FROM silver_{table}").fetchall()
        counts[table] = {"silver": silver} | dict(
            con.execute(f"SELECT reason, count(*) FROM quarantine_{table} GROUP BY ALL").fetchall()
        )
        con.execute(f"DROP TABLE classified_{table}; DROP TABLE duplicates_{table}; DROP TABLE lines_{table}")
    return counts


# -- the marts, from the documented definitions ---------------------------------------------------------
_MINUTES = "CAST(round(w.watch_duration_minutes, 2) AS DECIMAL(18, 2))"
_SESSIONS = f"""
    SELECT w.session_id, w.user_id, w.movie_id, w.watch_date, w.user_rating, w.action,
           {_MINUTES} AS minutes,
           year(w.watch_date) AS yr, month(w.watch_date) AS mo,
           date_trunc('month', w.watch_date)::DATE AS month_start,
           u.country AS user_country,
           coalesce(u.country, '{UNKNOWN}') AS country,
           coalesce(u.subscription_plan, '{UNKNOWN}') AS subscription_plan,
           coalesce(m.genre_primary, '{UNKNOWN}') AS genre_primary
    FROM silver_watch_history AS w
    LEFT JOIN silver_users AS u USING (user_id)
    LEFT JOIN silver_movies AS m USING (movie_id)
"""
_ZERO = "CAST(0 AS DECIMAL(38, 2))"


def _avg(total: str, count: str, digits: int = 2) -> str:
    return f"round(CAST({total} AS DOUBLE) / nullif({count}, 0), {digits})"


MART_SQL: dict[str, str] = {
    "monthly_engagement": f"""
        SELECT yr AS year, mo AS month, month_start, country, subscription_plan,
               coalesce(sum(minutes), {_ZERO}) AS total_watch_time_minutes,
               count(DISTINCT user_id) AS monthly_active_users,
               count(*) AS total_sessions,
               {_avg("sum(minutes)", "count(minutes)")} AS avg_session_duration,
               count(DISTINCT movie_id) AS unique_content_viewed
        FROM sessions GROUP BY ALL
    """,
    "cohort_retention": """
        WITH firsts AS (
            SELECT user_id, month_start, min(month_start) OVER (PARTITION BY user_id) AS cohort_month
            FROM sessions
        )
        SELECT cohort_month, month_start AS activity_month,
               date_diff('month', cohort_month, month_start) AS months_since_cohort,
               count(DISTINCT user_id) AS active_users,
               any_value(size) AS cohort_size,
               round(count(DISTINCT user_id) / any_value(size), 4) AS retention_rate
        FROM firsts
        JOIN (SELECT cohort_month AS c, count(DISTINCT user_id) AS size FROM firsts GROUP BY ALL)
          ON c = cohort_month
        GROUP BY cohort_month, month_start
    """,
    "content_performance": f"""
        SELECT yr AS year, mo AS month, month_start, genre_primary,
               {_avg("sum(user_rating)", "count(user_rating)")} AS avg_rating,
               count(*) AS total_views,
               coalesce(sum(minutes), {_ZERO}) AS total_watch_time_minutes,
               count(DISTINCT movie_id) AS unique_movies,
               count(DISTINCT user_id) AS unique_users
        FROM sessions GROUP BY ALL
    """,
    "content_performance_by_title": f"""
        WITH viewing AS (
            SELECT movie_id, count(*) AS views, count(*) FILTER (WHERE action = 'completed') AS completed,
                   sum(minutes) AS minutes, count(minutes) AS timed, count(DISTINCT user_id) AS users,
                   sum(user_rating) AS rating_sum, count(user_rating) AS ratings,
                   min(watch_date) AS first_watch, max(watch_date) AS last_watch
            FROM sessions GROUP BY movie_id
        ),
        reviewing AS (
            SELECT movie_id, count(*) AS reviews, sum(rating) AS rating_sum, count(rating) AS ratings
            FROM silver_reviews GROUP BY movie_id
        )
        SELECT m.movie_id, m.title, m.content_type, coalesce(m.genre_primary, '{UNKNOWN}') AS genre_primary,
               m.release_year,
               coalesce(v.views, 0) AS total_views,
               coalesce(v.completed, 0) AS completed_views,
               coalesce(v.minutes, {_ZERO}) AS total_watch_time_minutes,
               {_avg("v.minutes", "v.timed")} AS avg_watch_duration,
               coalesce(v.users, 0) AS unique_users,
               {_avg("v.rating_sum", "v.ratings")} AS avg_rating,
               coalesce(r.reviews, 0) AS total_reviews,
               {_avg("r.rating_sum", "r.ratings")} AS avg_review_rating,
               v.first_watch AS first_watch_date,
               v.last_watch AS last_watch_date
        FROM silver_movies m
        LEFT JOIN viewing v ON v.movie_id = m.movie_id
        LEFT JOIN reviewing r ON r.movie_id = m.movie_id
    """,
    "genre_performance": f"""
        WITH genres AS (
            SELECT coalesce(genre_primary, '{UNKNOWN}') AS genre_primary, count(*) AS catalogue_titles
            FROM silver_movies GROUP BY ALL
        ),
        viewing AS (
            SELECT genre_primary, count(*) AS views, sum(minutes) AS minutes, count(minutes) AS timed,
                   count(DISTINCT movie_id) AS movies, count(DISTINCT user_id) AS users,
                   sum(user_rating) AS rating_sum, count(user_rating) AS ratings
            FROM sessions GROUP BY genre_primary
        ),
        reviewing AS (
            SELECT coalesce(m.genre_primary, '{UNKNOWN}') AS genre_primary, count(*) AS reviews,
                   sum(r.rating) AS rating_sum, count(r.rating) AS ratings
            FROM silver_reviews r JOIN silver_movies m ON m.movie_id = r.movie_id
            GROUP BY ALL
        )
        SELECT g.genre_primary, g.catalogue_titles,
               coalesce(v.views, 0) AS total_views,
               coalesce(v.minutes, {_ZERO}) AS total_watch_time_minutes,
               {_avg("v.minutes", "v.timed")} AS avg_watch_duration,
               coalesce(v.movies, 0) AS unique_movies,
               coalesce(v.users, 0) AS unique_users,
               {_avg("v.rating_sum", "v.ratings")} AS avg_rating,
               coalesce(r.reviews, 0) AS total_reviews,
               {_avg("r.rating_sum", "r.ratings")} AS avg_review_rating
        FROM genres g
        LEFT JOIN viewing v ON v.genre_primary = g.genre_primary
        LEFT JOIN reviewing r ON r.genre_primary = g.genre_primary
    """,
    "monthly_active_users": f"""
        SELECT yr AS year, mo AS month, month_start,
               count(DISTINCT user_id) AS monthly_active_users,
               count(DISTINCT user_country) AS countries,
               coalesce(sum(minutes), {_ZERO}) AS total_watch_time_minutes,
               count(*) AS total_sessions
        FROM sessions GROUP BY ALL
    """,
    "monthly_active_users_by_segment": f"""
        WITH months AS (SELECT month_start, count(DISTINCT user_id) AS users FROM sessions GROUP BY ALL)
        SELECT yr AS year, mo AS month, s.month_start, country, subscription_plan,
               count(DISTINCT user_id) AS monthly_active_users,
               coalesce(sum(minutes), {_ZERO}) AS total_watch_time_minutes,
               count(*) AS total_sessions,
               round(count(DISTINCT user_id) / any_value(months.users), 4) AS share_of_monthly_active_users
        FROM sessions s JOIN months ON months.month_start = s.month_start
        GROUP BY yr, mo, s.month_start, country, subscription_plan
    """,
}


def build_marts(con: duckdb.DuckDBPyConnection) -> None:
    """``ref_<mart>`` for every mart, from the ``silver_*`` tables."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE sessions AS {_SESSIONS}")
    for mart, sql in MART_SQL.items():
        con.execute(f"CREATE OR REPLACE TABLE ref_{mart} AS {sql}")
    con.execute("DROP TABLE sessions")


def compute_reference(
    raw_dir: Path, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """Silver, quarantine and every mart from ``raw_dir/<table>.csv``, in one DuckDB connection."""
    if con is None:
        con = duckdb.connect(":memory:")
        con.execute("SET enable_progress_bar = false")
    build_silver(con, raw_dir)
    build_marts(con)
    return con


def write_silver_parquet(con: duckdb.DuckDBPyConnection, silver_dir: Path) -> None:
    """Silver-shaped Parquet (watch_history partitioned by watch_month), to develop dbt without Spark."""
    for table in TABLES:
        target = silver_dir / table
        target.mkdir(parents=True, exist_ok=True)
        if table == "watch_history":
            con.execute(
                f"COPY silver_{table} TO {_lit(str(target))} "
                "(FORMAT parquet, PARTITION_BY (watch_month), OVERWRITE_OR_IGNORE true)"
            )
        else:
            con.execute(f"COPY silver_{table} TO {_lit(str(target / 'part-0.parquet'))} (FORMAT parquet)")


def mart_differences(con: duckdb.DuckDBPyConnection, catalog: str, limit: int = 5) -> dict[str, str]:
    """Every way ``<catalog>.main.<mart>`` differs from ``ref_<mart>``; empty when all marts are identical.

    Identical means the same column names in the same order and the same multiset of rows, value for
    value: counts exactly, sums exactly (both DECIMAL with 2 decimals), rounded ratios exactly.
    """
    problems: dict[str, str] = {}
    for mart in MART_SQL:
        ref_cols = [r[0] for r in con.execute(f"DESCRIBE ref_{mart}").fetchall()]
        got_cols = [r[0] for r in con.execute(f"DESCRIBE {catalog}.main.{mart}").fetchall()]
        if ref_cols != got_cols:
            problems[mart] = f"columns differ: reference {ref_cols}, dbt {got_cols}"
            continue
        cols = ", ".join(_q(c) for c in ref_cols)
        only = {}
        for name, left, right in (("reference", f"ref_{mart}", f"{catalog}.main.{mart}"),
                                  ("dbt", f"{catalog}.main.{mart}", f"ref_{mart}")):  # fmt: skip
            rows = con.execute(
                f"SELECT {cols} FROM {left} EXCEPT ALL SELECT {cols} FROM {right} ORDER BY ALL LIMIT {limit}"
            ).fetchall()
            if rows:
                only[name] = rows
        if only:
            counts = [
                con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in (f"ref_{mart}", f"{catalog}.main.{mart}")
            ]
            problems[mart] = f"rows: reference {counts[0]}, dbt {counts[1]}; only in " + "; ".join(
                f"{side}: {rows}" for side, rows in only.items()
            )
    return problems
