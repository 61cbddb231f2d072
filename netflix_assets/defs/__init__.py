"""One module of Dagster definitions per technology layer; each exposes ``definitions(settings)``."""
