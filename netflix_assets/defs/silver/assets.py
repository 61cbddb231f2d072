"""Silver layer: the six cleaned tables as one Spark multi-asset, with blocking data-quality checks.

One multi-asset rather than six assets: Spark takes ~5 s to start, so all tables share one session
(and one step), users and movies first because the facts' orphan rules read them. It can be subset;
a fact selected alone reads the dimensions' Silver already in the bucket.

Checks are computed from the Parquet written, not from the job's counters. ``row_accounting`` (raw =
Silver + quarantine) blocks: a table that lost or doubled rows must not feed dbt. A raw file whose header
breaks the contract fails the step with a message naming the file and the columns, before Spark reads it.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    multi_asset,
)
from dagster_pyspark import PySparkResource

from core.bucket import Bucket
from core.contracts.silver import CONTRACTS, TABLE_ORDER, TableContract
from core.warehouse import Warehouse
from netflix_assets.defs.metadata import markdown_table, metadata_values
from netflix_assets.resources import (
    BigQueryClientResource,
    BucketResource,
    DataQualityResource,
    SilverSparkResource,
    WarehouseResource,
)
from silver.job import SilverJob, TableResult
from silver.reader import SilverInputError
from silver.verify import (
    QUARANTINE_SHARE,
    REFERENTIAL_INTEGRITY,
    ROW_ACCOUNTING,
    UNIQUE_KEY,
    CheckOutcome,
    Severity,
    run_and_verify,
)

if TYPE_CHECKING:
    from google.cloud import bigquery as gbq

    from core.bigquery_load import LoadResult

GROUP = "silver"
_CHECK_DESCRIPTIONS = {
    ROW_ACCOUNTING: "raw rows = Silver rows + quarantine rows; every data line lands exactly once",
    UNIQUE_KEY: "the table's key is unique in Silver",
    REFERENTIAL_INTEGRITY: "every user_id / movie_id exists in Silver users / movies",
    QUARANTINE_SHARE: "quarantined share of raw rows under the data_quality thresholds (WARN, then ERROR)",
}


def silver_asset_key(table: str) -> AssetKey:
    return AssetKey(["silver", table])


def _deps(contract: TableContract) -> list[AssetKey]:
    return [AssetKey(["raw", contract.name]), *(silver_asset_key(ref.table) for ref in contract.references)]


def _check_names(contract: TableContract) -> list[str]:
    names = [ROW_ACCOUNTING, UNIQUE_KEY]
    if contract.references:
        names.append(REFERENTIAL_INTEGRITY)
    return [*names, QUARANTINE_SHARE]


SPECS = [
    AssetSpec(
        silver_asset_key(table),
        group_name=GROUP,
        deps=_deps(CONTRACTS[table]),
        kinds={"spark", "parquet"},
        owners=["team:data-platform"],
        description=(
            f"`raw/{table}.csv` (or `.csv.gz`) cleaned by the rules of docs/data-quality.md into "
            f"`silver/{table}/` "
            f"(typed Parquet{', partitioned by watch_month' if table == 'watch_history' else ''}); "
            f"rejected rows go to `quarantine/{table}/` with a reason."
        ),
        metadata={"bucket_key": CONTRACTS[table].silver_key, "key": CONTRACTS[table].key},
    )
    for table in TABLE_ORDER
]
CHECK_SPECS = [
    AssetCheckSpec(name, asset=silver_asset_key(table), blocking=True, description=_CHECK_DESCRIPTIONS[name])
    for table in TABLE_ORDER
    for name in _check_names(CONTRACTS[table])
]


def _preview(rows: list[dict[str, Any]]) -> MetadataValue:
    header = list(rows[0]) if rows else []
    return markdown_table(header, [[row[c] for c in header] for row in rows])


def _materialization(result: TableResult, loaded: "LoadResult | None" = None) -> MaterializeResult:
    published = (
        {
            "bigquery_table": loaded.table_id,
            "bigquery_rows": loaded.rows,
            "bigquery_load_job": loaded.job_id,
            "bigquery_load_seconds": round(loaded.seconds, 2),
        }
        if loaded is not None
        else {}
    )
    return MaterializeResult(
        asset_key=silver_asset_key(result.table),
        metadata={
            **published,
            "dagster/row_count": result.silver_rows,
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(name, dtype) for name, dtype in result.silver_schema]
            ),
            "rows_in": result.raw_rows,
            "rows_out": result.silver_rows,
            "rows_quarantined": result.quarantine_rows,
            "quarantine_share": round(result.quarantine_share, 6),
            "quarantined_by_reason": MetadataValue.json(result.reasons),
            "quarantine_examples": MetadataValue.json(
                {
                    reason: [{"line": line, "value": text} for line, text in found]
                    for reason, found in result.examples.items()
                }
            ),
            "multiline_records": len(result.multiline_records),
            "silver_path": MetadataValue.path(result.silver_uri),
            "quarantine_path": MetadataValue.path(result.quarantine_uri),
            "source": MetadataValue.path(result.raw_uri),
            "preview": _preview(result.preview),
            "seconds": round(result.seconds, 2),
            "seconds_by_step": MetadataValue.json(result.phases),
        },
    )


def _check_result(table: str, outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=silver_asset_key(table),
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.WARN if outcome.severity is Severity.WARN else AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata=metadata_values(outcome.metadata),
    )


class _NotBuilt(Exception):
    """A fact skipped because a dimension it references failed in this run."""


class _NotLoaded(Exception):
    """A table Spark built that BigQuery refused to load (``SilverLoadError``'s sentence)."""


def _publish(
    context: AssetExecutionContext,
    client: "gbq.Client",
    warehouse: Warehouse,
    store: Bucket,
    table: str,
    checks: list[CheckOutcome],
) -> "LoadResult | None":
    """Load a table whose blocking checks passed into BigQuery (replacing it); None when it must not be."""
    from silver.bigquery_load import SilverLoadError, load_silver_table  # BigQuery only: see core.bigquery

    failed = [c.name for c in checks if not c.passed and c.severity is Severity.ERROR]
    if failed:
        context.log.error(
            f"silver {table} not loaded into BigQuery: blocking check(s) {', '.join(failed)} failed; "
            f"{warehouse.bigquery.silver_dataset}.{table} keeps its previous load"
        )
        return None
    try:
        loaded = load_silver_table(client, warehouse.bigquery, store, CONTRACTS[table])
    except SilverLoadError as exc:
        raise _NotLoaded(str(exc)) from exc
    context.log.info(
        f"silver {table}: loaded {loaded.rows:,} rows from {loaded.files} file(s) into {loaded.table_id} "
        f"(replacing it) in {loaded.seconds:.1f} s"
    )
    return loaded


@multi_asset(name="silver_tables", specs=SPECS, check_specs=CHECK_SPECS, can_subset=True)
def silver_tables(
    context: AssetExecutionContext,
    silver_spark: SilverSparkResource,
    bucket: BucketResource,
    data_quality: DataQualityResource,
    warehouse: WarehouseResource,
    bigquery: BigQueryClientResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Spark Silver for the selected tables; on the BigQuery warehouse each table is also loaded there.

    The load happens after the table's checks, and only if the blocking ones passed, so BigQuery's
    ``silver`` dataset never holds a table that dbt must not read; the materialization is reported once
    the table is where dbt reads it.
    """
    with ExitStack() as stack:
        target = warehouse.get()
        client = stack.enter_context(bigquery.get_client()) if target.on_bigquery else None
        yield from _build_silver(context, silver_spark, bucket.get(), data_quality, target, client)


def _build_silver(
    context: AssetExecutionContext,
    pyspark: PySparkResource,
    store: Bucket,
    data_quality: DataQualityResource,
    warehouse: Warehouse,
    client: "gbq.Client | None",
) -> Iterator[MaterializeResult | AssetCheckResult]:
    selected = [t for t in TABLE_ORDER if silver_asset_key(t) in context.selected_asset_keys]
    context.log.info(f"building Silver for {', '.join(selected)} from {store.uri('raw')}")
    job = SilverJob(pyspark.spark_session, store, log=context.log)
    broken: set[str] = set()  # tables the facts must not trust in this run

    def build(table: str) -> tuple[TableResult, list[CheckOutcome]]:
        contract = CONTRACTS[table]
        unusable = [ref.table for ref in contract.references if ref.table in broken]
        if unusable:
            raise _NotBuilt(f"silver {table} not built: Silver {' and '.join(unusable)} failed in this run")
        checks = [
            name
            for name in _check_names(contract)
            if AssetCheckKey(silver_asset_key(table), name) in context.selected_asset_check_keys
        ]
        warn, error = data_quality.quarantine_warn_share, data_quality.quarantine_error_share
        result, outcomes = run_and_verify(job, table, warn, error, checks)
        loaded = _publish(context, client, warehouse, store, table, outcomes) if client is not None else None
        return result, outcomes, loaded

    problems: list[str] = []
    for table, outcome in job.run(selected, work=build):
        if isinstance(outcome, Exception):
            if not isinstance(outcome, (SilverInputError, _NotLoaded, _NotBuilt)):
                raise outcome
            context.log.error(str(outcome))
            problems.append(str(outcome))
            broken.add(table)
            continue
        result, checks, loaded = outcome
        yield _materialization(result, loaded)
        for check in checks:
            yield _check_result(table, check)
            if not check.passed:
                log = context.log.warning if check.severity is Severity.WARN else context.log.error
                log(f"silver {table} check {check.name} failed: {check.description}")
                if check.severity is Severity.ERROR:
                    broken.add(table)
    if problems:
        raise Failure(
            description="Silver could not build every table:\n" + "\n".join(f"- {p}" for p in problems),
            metadata={"problems": MetadataValue.json(problems)},
        )
