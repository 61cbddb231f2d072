"""On-call definitions: the ``slo_status`` asset with one check per SLO, and the two on-call sensors."""

from dagster import Definitions

from core.settings import Settings
from netflix_assets.defs.oncall.assets import build_slo_status
from netflix_assets.defs.oncall.context import Oncall
from netflix_assets.defs.oncall.sensors import build_sensors


def definitions(settings: Settings) -> Definitions:
    oncall = Oncall.from_settings(settings)
    return Definitions(assets=[build_slo_status(oncall)], sensors=build_sensors(oncall))
