with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

)

select
    watch_year as year,
    watch_month_of_year as month,
    watch_month as month_start,
    country,
    subscription_plan,
    coalesce(sum(watch_duration_minutes), cast(0 as {{ money_type() }})) as total_watch_time_minutes,
    count(distinct user_id) as monthly_active_users,
    count(*) as total_sessions,
    {{ ratio('sum(watch_duration_minutes)', 'count(watch_duration_minutes)') }} as avg_session_duration,
    count(distinct movie_id) as unique_content_viewed

from sessions
group by watch_year, watch_month_of_year, watch_month, country, subscription_plan
