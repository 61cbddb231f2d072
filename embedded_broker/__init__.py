"""The embedded Kafka broker of the default deployment: the Tansu process and its supervisor."""
