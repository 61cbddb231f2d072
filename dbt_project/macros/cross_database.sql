{#
  The few places where DuckDB and BigQuery disagree and dbt's own cross-database macros do not cover
  it. Each macro dispatches on the adapter so the models stay dialect-free; tests/test_bigquery_compile.py
  renders every model for BigQuery and parses it with sqlglot to keep it that way.
#}

{# Exact type for minutes and money: sums stay exact to the cent instead of drifting as doubles. #}
{% macro money_type() -%}
  {{ return(adapter.dispatch('money_type', 'netflix_analytics')()) }}
{%- endmacro %}

{% macro default__money_type() -%}numeric(18, 2){%- endmacro %}
{% macro duckdb__money_type() -%}decimal(18, 2){%- endmacro %}
{% macro bigquery__money_type() -%}numeric{%- endmacro %}

{# 64-bit float everywhere (dbt.type_float() is a 32-bit FLOAT on DuckDB). #}
{% macro float64_type() -%}
  {{ return(adapter.dispatch('float64_type', 'netflix_analytics')()) }}
{%- endmacro %}

{% macro default__float64_type() -%}double precision{%- endmacro %}
{% macro duckdb__float64_type() -%}double{%- endmacro %}
{% macro bigquery__float64_type() -%}float64{%- endmacro %}

{# A Silver DOUBLE rounded half away from zero to 2 decimals, as an exact decimal. #}
{% macro to_money(expr) -%}
  cast(round({{ expr }}, 2) as {{ money_type() }})
{%- endmacro %}

{# numerator / denominator as a 64-bit float rounded to `digits`; NULL when the denominator is 0. #}
{% macro ratio(numerator, denominator, digits=2) -%}
  round(cast({{ numerator }} as {{ float64_type() }}) / nullif({{ denominator }}, 0), {{ digits }})
{%- endmacro %}

{# First day of the month of a DATE, as a DATE (dbt.date_trunc gives a TIMESTAMP on BigQuery). #}
{% macro month_start(date_expr) -%}
  cast({{ dbt.date_trunc('month', date_expr) }} as date)
{%- endmacro %}

{# ISO day of week: Monday = 1 … Sunday = 7. #}
{% macro iso_day_of_week(date_expr) -%}
  {{ return(adapter.dispatch('iso_day_of_week', 'netflix_analytics')(date_expr)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(date_expr) -%}cast(extract(isodow from {{ date_expr }}) as {{ dbt.type_int() }}){%- endmacro %}
{% macro bigquery__iso_day_of_week(date_expr) -%}mod(extract(dayofweek from {{ date_expr }}) + 5, 7) + 1{%- endmacro %}

{# Missing segment values become the `unknown_label` var so mart keys are never NULL. #}
{% macro segment(expr) -%}
  coalesce({{ expr }}, '{{ var("unknown_label") }}')
{%- endmacro %}
