{# 64-bit float everywhere (dbt.type_float() is a 32-bit FLOAT on DuckDB). #}
{% macro float64_type() -%}
  {{ return(adapter.dispatch('float64_type', 'netflix_analytics')()) }}
{%- endmacro %}

{% macro default__float64_type() -%}double precision{%- endmacro %}
{% macro duckdb__float64_type() -%}double{%- endmacro %}
{% macro bigquery__float64_type() -%}float64{%- endmacro %}
