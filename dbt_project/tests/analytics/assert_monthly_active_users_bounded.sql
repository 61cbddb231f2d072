{{ config(meta={'dagster': {'ref': {'name': 'monthly_active_users'}}}) }}
-- A month cannot have more active users than there are users, nor more than it has sessions; and its
-- segments partition the users, so segment MAU, watch time and sessions add up to the month's.
with segments as (

    select
        month_start,
        sum(monthly_active_users) as segment_users,
        sum(total_watch_time_minutes) as segment_minutes,
        sum(total_sessions) as segment_sessions
    from {{ ref('monthly_active_users_by_segment') }}
    group by month_start

)

select months.*
from {{ ref('monthly_active_users') }} as months
left join segments on months.month_start = segments.month_start
where months.monthly_active_users > (select count(*) from {{ ref('dim_users') }})
   or months.monthly_active_users > months.total_sessions
   or segments.month_start is null
   or segments.segment_users != months.monthly_active_users
   or segments.segment_minutes != months.total_watch_time_minutes
   or segments.segment_sessions != months.total_sessions
