with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

)

select
    watch_year as year,
    watch_month_of_year as month,
    watch_month as month_start,
    count(distinct user_id) as monthly_active_users,
    count(distinct user_country) as countries,
    coalesce(sum(watch_duration_minutes), cast(0 as {{ money_type() }})) as total_watch_time_minutes,
    count(*) as total_sessions

from sessions
group by watch_year, watch_month_of_year, watch_month
