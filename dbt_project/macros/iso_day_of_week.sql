{# ISO day of week: Monday = 1 … Sunday = 7. #}
{% macro iso_day_of_week(date_expr) -%}
  {{ return(adapter.dispatch('iso_day_of_week', 'netflix_analytics')(date_expr)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(date_expr) -%}cast(extract(isodow from {{ date_expr }}) as {{ dbt.type_int() }}){%- endmacro %}
{% macro bigquery__iso_day_of_week(date_expr) -%}mod(extract(dayofweek from {{ date_expr }}) + 5, 7) + 1{%- endmacro %}
