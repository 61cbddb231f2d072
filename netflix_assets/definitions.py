"""The code location: every layer's definitions merged with the resources chosen for this deployment."""

from __future__ import annotations

from dagster import Definitions

from netflix_assets.defs import dbt, raw, silver, speed
from netflix_assets.resources import build_resources
from netflix_assets.settings import Settings, get_settings


def build_definitions(settings: Settings) -> Definitions:
    return Definitions.merge(
        raw.definitions(settings),
        silver.definitions(settings),
        dbt.definitions(settings),
        speed.definitions(settings),
        Definitions(resources=build_resources(settings)),
    )


defs = build_definitions(get_settings())
