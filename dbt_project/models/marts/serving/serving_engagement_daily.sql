{{ config(materialized='view') }}
{#
  The Lambda merge per day (docs/serving.md): batch truth for every day that ends at or before the batch
  watermark W; for the day holding W, the batch's 5-minute windows before W plus the speed layer's windows
  from W on; the speed layer alone for later days. Sums of additive counts only (distinct users are not
  additive across the boundary: see serving_monthly_active_users).
#}
with watermark as (

    select batch_watermark, cast(batch_watermark as date) as watermark_date
    from {{ ref('batch_watermark') }}

),

parts as (

    select
        activity_date, country, genre_primary, device_type, quality, is_netflix_original, content_type,
        total_sessions, cast(total_watch_minutes as {{ float64_type() }}) as total_watch_minutes,
        completion_count, low_engagement_count, abandonment_count, quality_downgrade_count,
        total_sessions as batch_sessions, 0 as speed_sessions
    from {{ ref('engagement_daily_batch') }}

    union all

    select
        cast(windows.window_start as date), windows.country, windows.genre_primary, windows.device_type,
        windows.quality, windows.is_netflix_original, windows.content_type, windows.total_sessions,
        cast(windows.total_watch_minutes as {{ float64_type() }}), windows.completion_count,
        windows.low_engagement_count, windows.abandonment_count, windows.quality_downgrade_count,
        windows.total_sessions, 0
    from {{ ref('engagement_5min_batch') }} as windows
    cross join watermark
    where windows.window_start >= {{ utc_timestamp('watermark.watermark_date') }}

    union all

    select
        cast({{ utc_timestamp('realtime.window_start') }} as date), realtime.country, realtime.genre_primary,
        realtime.device_type, realtime.quality, realtime.is_netflix_original, realtime.content_type,
        realtime.total_sessions, cast(realtime.total_watch_minutes as {{ float64_type() }}),
        realtime.completion_count, realtime.low_engagement_count, realtime.abandonment_count,
        realtime.quality_downgrade_count, 0, realtime.total_sessions
    from {{ source('realtime', 'engagement_health_realtime') }} as realtime
    cross join watermark
    where {{ utc_timestamp('realtime.window_start') }} >= watermark.batch_watermark

),

days as (

    select
        activity_date, country, genre_primary, device_type, quality, is_netflix_original, content_type,
        sum(total_sessions) as total_sessions,
        sum(total_watch_minutes) as total_watch_minutes,
        sum(completion_count) as completion_count,
        sum(low_engagement_count) as low_engagement_count,
        sum(abandonment_count) as abandonment_count,
        sum(quality_downgrade_count) as quality_downgrade_count,
        sum(batch_sessions) as batch_sessions,
        sum(speed_sessions) as speed_sessions
    from parts
    group by activity_date, country, genre_primary, device_type, quality, is_netflix_original, content_type

)

select
    days.*,
    case
        when days.speed_sessions = 0 then 'batch'
        when days.batch_sessions = 0 then 'speed'
        else 'batch+speed'
    end as served_from,
    {{ engagement_rates() }}

from days
