{{ config(materialized='view') }}
{#
  The Lambda merge at the 5-minute grain (docs/serving.md): batch facts for every window that ends at or
  before the batch watermark W, the speed layer's windows from W on, read live from its published table.
  When the next build moves W, the speed layer's older windows stop being served (and expire there).
#}
with watermark as (

    select batch_watermark from {{ ref('batch_watermark') }}

),

batch as (

    select
        window_start, window_end, country, genre_primary, device_type, quality, is_netflix_original,
        content_type, total_sessions, unique_users,
        cast(total_watch_minutes as {{ float64_type() }}) as total_watch_minutes,
        completion_count, low_engagement_count, abandonment_count, quality_downgrade_count,
        'batch' as served_from
    from {{ ref('engagement_5min_batch') }}

),

speed as (

    select
        {{ utc_timestamp('realtime.window_start') }} as window_start,
        {{ utc_timestamp('realtime.window_end') }} as window_end,
        realtime.country, realtime.genre_primary, realtime.device_type, realtime.quality,
        realtime.is_netflix_original, realtime.content_type, realtime.total_sessions, realtime.unique_users,
        cast(realtime.total_watch_minutes as {{ float64_type() }}) as total_watch_minutes,
        realtime.completion_count, realtime.low_engagement_count, realtime.abandonment_count,
        realtime.quality_downgrade_count,
        'speed' as served_from
    from {{ source('realtime', 'engagement_health_realtime') }} as realtime
    cross join watermark
    where {{ utc_timestamp('realtime.window_start') }} >= watermark.batch_watermark

),

served as (

    select * from batch
    union all
    select * from speed

)

select
    served.*,
    {{ engagement_rates() }}

from served
