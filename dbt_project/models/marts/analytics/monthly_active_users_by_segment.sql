with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

),

segments as (

    select
        watch_year,
        watch_month_of_year,
        watch_month,
        country,
        subscription_plan,
        count(distinct user_id) as monthly_active_users,
        coalesce(sum(watch_duration_minutes), cast(0 as {{ money_type() }})) as total_watch_time_minutes,
        count(*) as total_sessions
    from sessions
    group by watch_year, watch_month_of_year, watch_month, country, subscription_plan

),

months as (

    select watch_month, count(distinct user_id) as month_active_users
    from sessions
    group by watch_month

)

select
    segments.watch_year as year,
    segments.watch_month_of_year as month,
    segments.watch_month as month_start,
    segments.country,
    segments.subscription_plan,
    segments.monthly_active_users,
    segments.total_watch_time_minutes,
    segments.total_sessions,
    {{ ratio('segments.monthly_active_users', 'months.month_active_users', 4) }} as share_of_monthly_active_users

from segments
inner join months on segments.watch_month = months.watch_month
