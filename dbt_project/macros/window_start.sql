{#
  Start of the tumbling window (var `window_minutes`, 5: the speed layer's, streaming/churn.py) holding a
  utc_timestamp(), aligned to the hour and so to the epoch like the stream's windows.
#}
{% macro window_start(ts) -%}
  {{ return(adapter.dispatch('window_start', 'netflix_analytics')(ts)) }}
{%- endmacro %}

{% macro default__window_start(ts) -%}
  time_bucket(interval '{{ var("window_minutes") }} minutes', {{ ts }})
{%- endmacro %}

{% macro bigquery__window_start(ts) -%}
  datetime_add(
    datetime_trunc({{ ts }}, hour),
    interval div(extract(minute from {{ ts }}), {{ var("window_minutes") }}) * {{ var("window_minutes") }} minute
  )
{%- endmacro %}
