{#
  A point in time as naive UTC wall-clock time: TIMESTAMP on DuckDB (the session runs in UTC, see
  profiles.yml), DATETIME on BigQuery (what dbt.dateadd returns there). Every timestamp the serving models
  read (Parquet TIMESTAMPTZ, the stream's ledger, a DATE, a literal) goes through here, so they compare
  and add alike on both warehouses.
#}
{% macro utc_timestamp(expr) -%}
  {{ return(adapter.dispatch('utc_timestamp', 'netflix_analytics')(expr)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expr) -%}cast({{ expr }} as timestamp){%- endmacro %}
{% macro bigquery__utc_timestamp(expr) -%}cast({{ expr }} as datetime){%- endmacro %}
