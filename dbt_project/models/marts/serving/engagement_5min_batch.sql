{#
  Batch truth at the speed layer's grain: the master dataset's sessions per 5-minute window and segment,
  for every window that ends at or before the batch watermark W (the speed layer serves the rest).
  Landed history rows carry only a date, so they fall in their day's first window.
#}
with sessions as (

    {{ facts_closed_by_watermark(dbt.dateadd("minute", var("window_minutes"), "facts.window_start")) }}

)

select
    window_start,
    {{ dbt.dateadd('minute', var('window_minutes'), 'window_start') }} as window_end,
    {{ speed_segment() }},
    {{ engagement_counts() }}

from sessions
group by window_start, {{ speed_segment(group_by=true) }}
