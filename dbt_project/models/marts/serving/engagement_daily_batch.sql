{#
  Batch truth per day and segment (the speed layer's segments), for every day that ends at or before the
  batch watermark W. The day holding W is served from the batch's 5-minute windows before W and the speed
  layer's after it (serving_engagement_daily).
#}
with watermark as (

    select batch_watermark from {{ ref('int_batch_watermark') }}

),

sessions as (

    select facts.*
    from {{ ref('int_watch_facts_master') }} as facts
    cross join watermark
    where {{ dbt.dateadd('day', 1, 'facts.watch_date') }} <= watermark.batch_watermark

)

select
    watch_date as activity_date,
    {{ speed_segment() }},
    {{ engagement_counts() }}

from sessions
group by watch_date, {{ speed_segment(group_by=true) }}
