{{ config(materialized='view') }}
{#
  Distinct viewers and sessions per 5-minute window, merged at the batch watermark W: batch truth for
  windows ending at or before W, the speed layer's windows (active_users_realtime, read live) from W on.
#}
with watermark as (

    select batch_watermark from {{ ref('batch_watermark') }}

)

select window_start, window_end, active_users, total_sessions, 'batch' as served_from
from {{ ref('active_users_5min_batch') }}

union all

select
    {{ utc_timestamp('realtime.window_start') }},
    {{ utc_timestamp('realtime.window_end') }},
    realtime.active_users,
    realtime.total_sessions,
    'speed'
from {{ source('realtime', 'active_users_realtime') }} as realtime
cross join watermark
where {{ utc_timestamp('realtime.window_start') }} >= watermark.batch_watermark
