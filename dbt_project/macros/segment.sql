{# Missing segment values become the `unknown_label` var so mart keys are never NULL. #}
{% macro segment(expr) -%}
  coalesce({{ expr }}, '{{ var("unknown_label") }}')
{%- endmacro %}
