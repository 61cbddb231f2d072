"""Dagster code location of the Netflix engagement Lambda architecture."""
