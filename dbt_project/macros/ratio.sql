{# numerator / denominator as a 64-bit float rounded to `digits`; NULL when the denominator is 0. #}
{% macro ratio(numerator, denominator, digits=2) -%}
  round(cast({{ numerator }} as {{ float64_type() }}) / nullif({{ denominator }}, 0), {{ digits }})
{%- endmacro %}
