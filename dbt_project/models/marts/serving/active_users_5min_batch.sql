{#
  Batch truth of distinct viewers and sessions per 5-minute window, across every segment (a viewer counts
  once per window), for windows ending at or before the batch watermark W.
#}
with watermark as (

    select batch_watermark from {{ ref('int_batch_watermark') }}

)

select
    facts.window_start,
    {{ dbt.dateadd('minute', var('window_minutes'), 'facts.window_start') }} as window_end,
    count(distinct facts.user_id) as active_users,
    count(*) as total_sessions

from {{ ref('int_watch_facts_master') }} as facts
cross join watermark
where {{ dbt.dateadd('minute', var('window_minutes'), 'facts.window_start') }} <= watermark.batch_watermark
group by facts.window_start
