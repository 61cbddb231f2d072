{# The stream's ledger: one row per committed micro-batch, with the counts it recorded. #}
with source as (

    select * from {{ source('realtime', 'stream_batches') }}

)

select
    batch_id,
    {{ utc_timestamp('committed_at') }} as committed_at,
    rows_in,
    valid,
    dead_letters,
    late,
    coalesce(duplicates, 0) as duplicates,
    {{ utc_timestamp('watermark') }} as stream_watermark,
    {{ utc_timestamp('max_event_time') }} as max_event_time

from source
