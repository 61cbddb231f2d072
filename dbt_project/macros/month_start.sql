{# First day of the month of a DATE, as a DATE (dbt.date_trunc gives a TIMESTAMP on BigQuery). #}
{% macro month_start(date_expr) -%}
  cast({{ dbt.date_trunc('month', date_expr) }} as date)
{%- endmacro %}
