"""The Spark Silver job: raw CSVs in the bucket -> typed Silver Parquet + quarantine, by docs/data-quality.md.

Modules, in the order data flows through them: ``core.contracts.silver`` (types, keys, domains per table),
``reader`` (header check, numbered text lines, ``from_csv`` with an all-string schema), ``expressions``
(value parsing as Spark SQL, no Python UDFs), ``rules`` (row rules 1-9 and value rules), ``writer``
(Parquet), ``job`` (tables on a few threads of one session), ``outputs`` (DuckDB over the written Parquet),
``verify`` (the asset checks, from what was written).
"""
