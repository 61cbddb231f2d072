"""The code location: every layer's definitions merged with the resources chosen for this deployment.

Default executor (what a "Materialize" from the UI uses): in-process, at normal priority
(``defs/executors.py`` says why). A selection that mixes the never-ending stream with batch assets runs the
steps one after the other; launch ``speed_stream_job`` on its own instead.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from core.settings import Settings, get_settings
from netflix_assets.defs.dbt import definitions as dbt
from netflix_assets.defs.oncall import definitions as oncall
from netflix_assets.defs.raw import definitions as raw
from netflix_assets.defs.serving import definitions as serving
from netflix_assets.defs.silver import definitions as silver
from netflix_assets.defs.speed import definitions as speed
from netflix_assets.resources import build_resources


def build_definitions(settings: Settings) -> Definitions:
    return Definitions.merge(
        raw.definitions(settings),
        silver.definitions(settings),
        dbt.definitions(settings),
        speed.definitions(settings),
        serving.definitions(),
        oncall.definitions(settings),
        Definitions(resources=build_resources(settings), executor=in_process_executor),
    )


defs = build_definitions(get_settings())
