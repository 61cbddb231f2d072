{#
  The engagement measures of a group of master-dataset sessions (int_watch_candidates columns), named as
  the speed layer names them in engagement_health_realtime, so batch and speed rows union by name.
#}
{% macro engagement_counts() -%}
    count(*) as total_sessions,
    count(distinct user_id) as unique_users,
    coalesce(sum(watch_duration_minutes), cast(0 as {{ money_type() }})) as total_watch_minutes,
    count(case when is_completed then 1 end) as completion_count,
    count(case when is_low_engagement then 1 end) as low_engagement_count,
    count(case when is_abandoned then 1 end) as abandonment_count,
    count(case when is_quality_downgrade then 1 end) as quality_downgrade_count
{%- endmacro %}
