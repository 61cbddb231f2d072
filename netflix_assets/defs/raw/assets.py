"""Raw layer: one asset per landed CSV, versioned by its content hash, with blocking header checks.

A raw asset does not transform anything: it lands the file in ``raw/`` (copying it from the optional
landing folder), profiles it in one streamed pass and records what downstream needs to trust it. Its
checks are blocking, so a file with a wrong header or no CSV content stops Silver before Spark starts and
the failure names the file and the columns, not a Java stack trace.
"""

from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DataVersion,
    Failure,
    MaterializeResult,
    asset,
)

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, RAW_SUFFIXES, raw_key, raw_keys
from core.raw_files import RawFileError, RawFileProfile, header_problems, profile_raw_file, raw_key_in
from netflix_assets.defs.metadata import markdown_table
from netflix_assets.resources import BucketResource

HEADER_CHECK = "header_matches_contract"
CSV_CHECK = "is_nonempty_csv"


def _csv_check(profile: RawFileProfile) -> AssetCheckResult:
    if profile.problem:
        return AssetCheckResult(check_name=CSV_CHECK, passed=False, description=profile.problem,
                                metadata={"file": profile.uri, "bytes": profile.bytes})  # fmt: skip
    if profile.data_rows == 0:
        return AssetCheckResult(
            check_name=CSV_CHECK,
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"{profile.uri} has a header but no data rows",
            metadata={"file": profile.uri, "rows": 0},
        )
    return AssetCheckResult(check_name=CSV_CHECK, passed=True, metadata={"rows": profile.data_rows})


def _header_check(profile: RawFileProfile, table: str) -> AssetCheckResult:
    expected = RAW_COLUMNS[table]
    if profile.header is None:
        return AssetCheckResult(
            check_name=HEADER_CHECK,
            passed=False,
            description=f"{profile.uri}: no header could be read ({profile.problem})",
            metadata={"file": profile.uri, "expected_columns": list(expected)},
        )
    problems = header_problems(profile.header, expected)
    return AssetCheckResult(
        check_name=HEADER_CHECK,
        passed=not problems,
        description=f"{profile.uri}: " + "; ".join(problems) if problems else None,
        metadata={
            "file": profile.uri,
            "expected_columns": list(expected),
            "found_columns": profile.header,
            "problems": problems,
        },
    )


def build_raw_asset(table: str, landing_dir: Path | None) -> AssetsDefinition:
    key = raw_key(table)
    checks = [
        AssetCheckSpec(CSV_CHECK, asset=AssetKey(["raw", table]), blocking=True,
                       description=f"raw/{table}.csv(.gz) is non-empty UTF-8 CSV text"),
        AssetCheckSpec(HEADER_CHECK, asset=AssetKey(["raw", table]), blocking=True,
                       description=f"raw/{table}.csv(.gz) has exactly the contract's columns, in order"),
    ]  # fmt: skip

    @asset(
        key=AssetKey(["raw", table]),
        group_name="raw",
        kinds={"csv"},
        owners=["team:data-platform"],
        check_specs=checks,
        description=f"`{key}` (or `{key}.gz`) as landed in the bucket: the Kaggle-shaped {table} export.",
        metadata={"bucket_key": key, "contract_columns": list(RAW_COLUMNS[table])},
    )
    def _raw(context: AssetExecutionContext, bucket: BucketResource) -> MaterializeResult:
        store = bucket.get()
        _land(context, store, table, landing_dir)
        try:
            key = raw_key_in(store, table)
        except RawFileError as exc:
            raise Failure(str(exc)) from exc
        if key is None:
            wanted = " or ".join(store.uri(k) for k in raw_keys(table))
            raise Failure(
                f"{wanted} does not exist. Generate data with `netflix-lambda generate`, drop the "
                f"Kaggle CSV there, or set NETFLIX_RAW_LANDING_DIR to a folder holding {table}.csv."
            )
        profile = profile_raw_file(store, key)
        context.log.info(f"{profile.uri}: {profile.data_rows:,} data rows, {profile.bytes:,} bytes")
        return MaterializeResult(
            data_version=DataVersion(profile.data_version),
            metadata={
                "uri": profile.uri,
                "dagster/row_count": profile.data_rows,
                "bytes": profile.bytes,
                "sha256": profile.sha256,
                "columns": profile.header or [],
                "preview": markdown_table(profile.header, profile.preview) if profile.header else "n/a",
            },
            check_results=[_csv_check(profile), _header_check(profile, table)],
        )

    return _raw


def _land(context: AssetExecutionContext, store: Bucket, table: str, landing_dir: Path | None) -> None:
    """Copy ``<table>.csv`` or ``<table>.csv.gz`` from the landing folder, replacing the other form."""
    if landing_dir is None:
        return
    landed = [
        landing_dir / f"{table}{suffix}"
        for suffix in RAW_SUFFIXES
        if (landing_dir / f"{table}{suffix}").exists()
    ]
    if len(landed) > 1:
        raise Failure(
            f"{' and '.join(map(str, landed))} both exist: keep one export per table in the landing folder"
        )
    if not landed:
        return
    key = f"raw/{landed[0].name}"
    context.log.info(f"landing {landed[0]} into {store.uri(key)}")
    store.upload(landed[0], key)
    for other in raw_keys(table):
        if other != key and store.exists(other):
            context.log.info(f"removing {store.uri(other)}: replaced by the landed {landed[0].name}")
            store.delete(other)
