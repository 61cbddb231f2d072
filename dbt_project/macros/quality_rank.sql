{#
  Rank of a stream quality class: SD 1 < HD 2 < 4K 3 = Ultra HD 3 (the two top tiers are one resolution
  class sold under two names); NULL for anything else. The speed layer ranks the same way
  (streaming/dimensions.py QUALITY_RANK).
#}
{% macro quality_rank(expr) -%}
  case {{ expr }} when 'SD' then 1 when 'HD' then 2 when '4K' then 3 when 'Ultra HD' then 3 end
{%- endmacro %}
