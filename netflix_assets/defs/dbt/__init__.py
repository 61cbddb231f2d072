"""Gold layer: the dbt project as Dagster assets, and the hourly batch-layer schedule."""
