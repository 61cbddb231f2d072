{#
  One row per publish: the batch watermark W this build of the marts covers (docs/serving.md) and what
  went into it. Readers find here where batch truth ends and the speed layer's windows take over; Dagster
  shows the same values as metadata of every gold materialization.
#}
with watermark as (

    select * from {{ ref('int_batch_watermark') }}

),

candidates as (

    select
        count(case when origin = 'history' and session_rank = 1 then 1 end) as history_sessions,
        count(case when origin = 'stream' and session_rank = 1 then 1 end) as stream_sessions,
        count(case when origin = 'stream_late' and session_rank = 1 then 1 end) as late_sessions,
        count(case when origin <> 'history' and rejection_reason is not null then 1 end) as stream_events_rejected,
        count(case when origin <> 'history' and session_rank > 1 then 1 end) as stream_events_superseded
    from {{ ref('int_watch_candidates') }}

),

ledger as (

    select
        count(*) as stream_batches,
        coalesce(sum(ledger.dead_letters), 0) as dead_letters,
        coalesce(sum(ledger.duplicates), 0) as stream_duplicates_dropped
    from {{ ref('stg_stream_batches') }} as ledger
    cross join watermark
    where ledger.batch_id <= watermark.last_batch_id

),

after_watermark as (

    select count(*) as stream_events_after_watermark
    from {{ ref('stg_stream_watch_events') }} as events
    cross join watermark
    where events.batch_id <= watermark.last_batch_id
      and events.event_time >= watermark.batch_watermark

)

select
    watermark.batch_watermark,
    watermark.history_end,
    watermark.stream_end,
    watermark.stream_watermark,
    watermark.last_batch_id,
    watermark.built_at,
    candidates.history_sessions,
    candidates.stream_sessions,
    candidates.late_sessions,
    candidates.stream_events_rejected,
    candidates.stream_events_superseded,
    after_watermark.stream_events_after_watermark,
    ledger.stream_batches,
    ledger.dead_letters,
    ledger.stream_duplicates_dropped

from watermark
cross join candidates
cross join ledger
cross join after_watermark
