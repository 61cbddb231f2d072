{#
  Batch truth per day and segment (the speed layer's segments), for every day that ends at or before the
  batch watermark W. The day holding W is served from the batch's 5-minute windows before W and the speed
  layer's after it (serving_engagement_daily).
#}
with sessions as (

    {{ facts_closed_by_watermark(dbt.dateadd("day", 1, "facts.watch_date")) }}

)

select
    watch_date as activity_date,
    {{ speed_segment() }},
    {{ engagement_counts() }}

from sessions
group by watch_date, {{ speed_segment(group_by=true) }}
