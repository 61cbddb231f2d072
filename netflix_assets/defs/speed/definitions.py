"""The speed layer's definitions: the topic, the stream multi-asset, its job and its sensor."""

from dagster import Definitions

from core.settings import Settings
from netflix_assets.defs.speed.assets import speed_assets
from netflix_assets.defs.speed.jobs import speed_stream_job
from netflix_assets.defs.speed.sensors import speed_stream_sensor


def definitions(settings: Settings) -> Definitions:
    return Definitions(assets=speed_assets(settings), jobs=[speed_stream_job], sensors=[speed_stream_sensor])
