{#
  Batch truth of distinct viewers and sessions per 5-minute window, across every segment (a viewer counts
  once per window), for windows ending at or before the batch watermark W.
#}
with sessions as (

    {{ facts_closed_by_watermark(dbt.dateadd("minute", var("window_minutes"), "facts.window_start")) }}

)

select
    window_start,
    {{ dbt.dateadd('minute', var('window_minutes'), 'window_start') }} as window_end,
    count(distinct user_id) as active_users,
    count(*) as total_sessions

from sessions
group by window_start
