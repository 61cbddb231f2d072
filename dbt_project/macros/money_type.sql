{# Exact type for minutes and money: sums stay exact to the cent instead of drifting as doubles. #}
{% macro money_type() -%}
  {{ return(adapter.dispatch('money_type', 'netflix_analytics')()) }}
{%- endmacro %}

{% macro default__money_type() -%}numeric(18, 2){%- endmacro %}
{% macro duckdb__money_type() -%}decimal(18, 2){%- endmacro %}
{% macro bigquery__money_type() -%}numeric{%- endmacro %}
