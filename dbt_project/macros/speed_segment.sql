{#
  The speed layer's segment columns (streaming/churn.py SEGMENT_KEYS) of int_watch_candidates, under the
  speed layer's names; with `group_by=true`, the same columns as a GROUP BY list.
#}
{% macro speed_segment(group_by=false) -%}
  {%- set columns = [
      ('segment_country', 'country'), ('segment_genre_primary', 'genre_primary'),
      ('segment_device_type', 'device_type'), ('segment_quality', 'quality'),
      ('segment_is_netflix_original', 'is_netflix_original'), ('segment_content_type', 'content_type'),
  ] -%}
  {%- for source, name in columns -%}
    {{ source }}{% if not group_by %} as {{ name }}{% endif %}{% if not loop.last %}, {% endif %}
  {%- endfor -%}
{%- endmacro %}
