"""The code location: every layer's definitions merged with the resources chosen for this deployment."""

from __future__ import annotations

from dagster import Definitions

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
        Definitions(resources=build_resources(settings)),
    )


defs = build_definitions(get_settings())
