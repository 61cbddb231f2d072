"""Speed layer: the Kafka source for Spark and the Structured Streaming job."""
