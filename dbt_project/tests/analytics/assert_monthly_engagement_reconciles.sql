{{ config(meta={'dagster': {'ref': {'name': 'monthly_engagement'}}}) }}
-- monthly_engagement slices every session exactly once: its sessions and minutes add up to the fact
-- table's, per month; no segment has more active users than sessions or more titles than sessions.
with engagement as (

    select
        month_start,
        sum(total_sessions) as sessions,
        sum(total_watch_time_minutes) as minutes
    from {{ ref('monthly_engagement') }}
    group by month_start

),

facts as (

    select
        watch_month as month_start,
        count(*) as sessions,
        coalesce(sum(watch_duration_minutes), 0) as minutes
    from {{ ref('fct_watch_sessions') }}
    group by watch_month

)

select
    coalesce(engagement.month_start, facts.month_start) as month_start,
    engagement.sessions as mart_sessions,
    facts.sessions as fact_sessions,
    engagement.minutes as mart_minutes,
    facts.minutes as fact_minutes
from engagement
full outer join facts on engagement.month_start = facts.month_start
where engagement.month_start is null
   or facts.month_start is null
   or engagement.sessions != facts.sessions
   or engagement.minutes != facts.minutes

union all

select month_start, total_sessions, monthly_active_users, null, null
from {{ ref('monthly_engagement') }}
where monthly_active_users > total_sessions
   or unique_content_viewed > total_sessions
