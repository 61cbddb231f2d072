"""The Silver layer's definitions: the six cleaned tables as one Spark multi-asset."""

from dagster import Definitions

from core.settings import Settings
from netflix_assets.defs.silver.assets import silver_tables


def definitions(settings: Settings) -> Definitions:
    """Silver needs only the resources; ``settings`` is accepted so every layer is built the same way."""
    del settings
    return Definitions(assets=[silver_tables])
