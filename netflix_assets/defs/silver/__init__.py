"""Silver layer: the Spark job's tables as Dagster assets with blocking data-quality checks."""
