"""The serving layer's definitions: the reconciliation check (W metadata and dashboard links are attached
by the gold and speed definitions, which own those assets)."""

from dagster import Definitions

from netflix_assets.defs.serving.reconciliation import speed_layer_matches_batch_truth


def definitions() -> Definitions:
    return Definitions(asset_checks=[speed_layer_matches_batch_truth])
