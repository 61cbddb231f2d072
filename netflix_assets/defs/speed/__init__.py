"""Speed layer in Dagster: the topic as an observable source, the stream as one long-running multi-asset,
and the sensor that keeps it running."""
