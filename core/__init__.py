"""Shared infrastructure every layer stands on: settings, bucket, warehouse layout, Spark and Kafka clients,
and the contracts (raw tables, Silver tables, watch events). Imports nothing else of the project."""
