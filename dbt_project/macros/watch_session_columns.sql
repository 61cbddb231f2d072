{#
  The columns of the session fact (fct_watch_sessions), which int_watch_sessions_enriched carries beside
  the marts' segment labels: one list, so the star's fact and the sessions the marts count cannot drift.
#}
{% macro watch_session_columns() -%}
  {%- set columns = [
      'session_id', 'user_id', 'movie_id', 'watch_date', 'watch_month', 'watch_year', 'watch_month_of_year',
      'device_type', 'watch_duration_minutes', 'progress_percentage', 'action', 'is_completed', 'quality',
      'location_country', 'is_download', 'user_rating', 'source_file', 'source_line', 'event_time', 'origin',
      'event_id',
  ] -%}
  {{ columns | join(',\n    ') }}
{%- endmacro %}
