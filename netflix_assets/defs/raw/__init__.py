"""Raw layer: the landed CSVs as assets, with blocking header checks."""
