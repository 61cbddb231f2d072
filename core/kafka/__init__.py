"""Kafka clients shared by the producer, the stream and Dagster: where the broker is, topic admin, exact end
offsets. Correct on a real cluster and on the embedded Tansu broker alike (``docs/speed-layer.md``)."""
