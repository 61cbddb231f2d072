"""The code location: every layer's definitions merged with the resources chosen for this deployment.

Default executor (what a "Materialize" from the UI uses): in-process, for the reason the two jobs give
(``defs/dbt/schedules.py``, ``defs/speed/jobs.py``): on 2 cores a Python per step that re-imports the code
location costs more than the steps. A selection that mixes the never-ending stream with batch assets runs
the stream last; launch ``speed_stream_job`` on its own instead.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from core.settings import Settings, get_settings
from netflix_assets.defs.dbt import definitions as dbt
from netflix_assets.defs.raw import definitions as raw
from netflix_assets.defs.silver import definitions as silver
from netflix_assets.defs.speed import definitions as speed
from netflix_assets.resources import build_resources


def build_definitions(settings: Settings) -> Definitions:
    return Definitions.merge(
        raw.definitions(settings),
        silver.definitions(settings),
        dbt.definitions(settings),
        speed.definitions(settings),
        Definitions(resources=build_resources(settings), executor=in_process_executor),
    )


defs = build_definitions(get_settings())
