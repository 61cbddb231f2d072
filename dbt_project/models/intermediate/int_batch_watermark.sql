{#
  The batch watermark W of this build: the end of the last complete period the batch layer processed
  (docs/serving.md). The landed history is complete to the end of its last day; the speed layer's events
  are complete up to the end of the last 5-minute window its watermark (newest event time minus 10 minutes,
  from the ledger) has closed, because any event for an earlier window arriving from now on is late and
  lands in speed/late, which the next build reads. W is the later of the two; events at or after W are
  left to the speed layer. The ledger is read once, here: every model filters the stream's events on this
  row's last_batch_id, so one build sees one consistent set of micro-batches.
#}
with history as (

    select max(watch_date) as last_history_date from {{ ref('stg_watch_history') }}

),

stream as (

    select max(batch_id) as last_batch_id, max(stream_watermark) as stream_watermark
    from {{ ref('stg_stream_batches') }}

),

bounds as (

    select
        history.last_history_date,
        {{ utc_timestamp(dbt.dateadd('day', 1, 'history.last_history_date')) }} as history_end,
        stream.last_batch_id,
        stream.stream_watermark,
        {{ window_start('stream.stream_watermark') }} as stream_end
    from history
    cross join stream

)

select
    coalesce(
        greatest(coalesce(history_end, stream_end), coalesce(stream_end, history_end)),
        {{ utc_timestamp("'1970-01-01 00:00:00'") }}
    ) as batch_watermark,
    history_end,
    stream_end,
    stream_watermark,
    coalesce(last_batch_id, -1) as last_batch_id,
    last_history_date,
    {{ utc_timestamp(dbt.current_timestamp()) }} as built_at

from bounds
