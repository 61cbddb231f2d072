{#
  Every valid event the speed layer accepted, from committed micro-batches only: the events it counted
  (speed/silver) and the ones that came behind its watermark (speed/late), each with its origin. A copy
  of the same event_id may appear in both (an on-time original re-sent late); int_watch_candidates keeps one.
#}
{%- set columns = [
    'event_id', 'event_time', 'session_id', 'user_id', 'movie_id', 'device_type', 'watch_duration_minutes',
    'progress_percentage', 'action', 'quality', 'location_country', 'is_download', 'user_rating',
    'batch_id', adapter.quote('partition'), adapter.quote('offset')
] -%}

with committed as (

    select batch_id from {{ ref('stg_stream_batches') }}

),

arrived as (

    select {{ columns | join(', ') }}, 'stream' as origin from {{ source('speed', 'silver_watch_events') }}
    union all
    select {{ columns | join(', ') }}, 'stream_late' as origin from {{ source('speed', 'late_events') }}

)

select
    event_id,
    {{ utc_timestamp('event_time') }} as event_time,
    session_id,
    user_id,
    movie_id,
    device_type,
    {{ to_money('watch_duration_minutes') }} as watch_duration_minutes,
    progress_percentage,
    action,
    quality,
    location_country,
    is_download,
    cast(user_rating as {{ dbt.type_int() }}) as user_rating,
    origin,
    batch_id,
    cast({{ adapter.quote('partition') }} as {{ dbt.type_int() }}) as kafka_partition,
    {{ adapter.quote('offset') }} as kafka_offset

from arrived
where batch_id in (select batch_id from committed)
