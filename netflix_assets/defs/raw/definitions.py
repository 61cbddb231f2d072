"""The raw layer's definitions: one asset per landed CSV."""

from dagster import Definitions

from core.contracts.raw import RAW_TABLES
from core.settings import Settings
from netflix_assets.defs.raw.assets import build_raw_asset


def definitions(settings: Settings) -> Definitions:
    return Definitions(assets=[build_raw_asset(t, settings.raw_landing_dir) for t in RAW_TABLES])
