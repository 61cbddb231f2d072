"""Serving layer in Dagster: the batch watermark as metadata, the speed-vs-batch reconciliation check, and
the dashboards' URLs on the assets they show."""
