{# A Silver DOUBLE rounded half away from zero to 2 decimals, as an exact decimal. #}
{% macro to_money(expr) -%}
  cast(round({{ expr }}, 2) as {{ money_type() }})
{%- endmacro %}
