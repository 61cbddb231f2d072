"""The contracts between the layers, as data: raw CSV columns, Silver tables, watch-event schemas and
bucket keys."""
