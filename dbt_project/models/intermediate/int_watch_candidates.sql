{#
  Every record that claims to be a viewing session, from both inputs of the batch layer, with its verdict:
  the landed history (Silver watch_history, already cleaned and unique per session) and every event the
  speed layer accepted up to the batch watermark W (stg_stream_watch_events, counted or late).

  The one de-duplication rule of the master dataset (docs/serving.md):
  1. a re-sent event is one event: copies of an event_id collapse to one, the counted copy (speed/silver)
     before a late one, then the earliest micro-batch, partition and offset;
  2. the batch layer's Silver rules apply to events as to CSV rows: an event whose user or movie is not in
     Silver is rejected (`orphan_user`, then `orphan_movie`) and kept here with its reason (the mart
     stream_events_quarantine), never counted;
  3. one session is one session: among the accepted records of a session_id, the landed history row wins,
     then the newest event (latest event_time, ties by event_id). `session_rank` = 1 marks the survivor
     (int_watch_facts_master); NULL marks a rejected record.

  Each record also carries what the 5-minute serving grain groups by, defined exactly as the speed layer
  defines it (streaming/churn.py), so the two layers' windows can be merged and reconciled: window, segment
  (the user's Silver country, else the event's location_country; the title's genre, originality and type;
  device and quality; 'Unknown' when missing) and the churn flags.
#}
with watermark as (

    select batch_watermark, last_batch_id from {{ ref('int_batch_watermark') }}

),

history as (

    select
        session_id,
        user_id,
        movie_id,
        {{ utc_timestamp('watch_date') }} as event_time,
        watch_date,
        device_type,
        watch_duration_minutes,
        progress_percentage,
        action,
        quality,
        location_country,
        is_download,
        user_rating,
        'history' as origin,
        cast(null as {{ dbt.type_string() }}) as event_id,
        cast(null as {{ dbt.type_bigint() }}) as batch_id,
        source_file,
        source_line,
        cast(null as {{ dbt.type_string() }}) as rejection_reason
    from {{ ref('stg_watch_history') }}

),

event_copies as (

    select
        events.*,
        row_number() over (
            partition by events.event_id
            order by case when events.origin = 'stream' then 0 else 1 end,
                     events.batch_id, events.kafka_partition, events.kafka_offset
        ) as copy_number
    from {{ ref('stg_stream_watch_events') }} as events
    cross join watermark
    where events.event_time < watermark.batch_watermark
      and events.batch_id <= watermark.last_batch_id

),

stream as (

    select
        events.session_id,
        events.user_id,
        events.movie_id,
        events.event_time,
        cast(events.event_time as date) as watch_date,
        events.device_type,
        events.watch_duration_minutes,
        events.progress_percentage,
        events.action,
        events.quality,
        events.location_country,
        events.is_download,
        events.user_rating,
        events.origin,
        events.event_id,
        events.batch_id,
        cast(case when events.origin = 'stream' then '{{ var("speed_silver_key") }}'
                  else '{{ var("speed_late_key") }}' end as {{ dbt.type_string() }}) as source_file,
        cast(null as {{ dbt.type_bigint() }}) as source_line,
        case
            when users.user_id is null then 'orphan_user'
            when movies.movie_id is null then 'orphan_movie'
        end as rejection_reason
    from event_copies as events
    left join {{ ref('stg_users') }} as users on events.user_id = users.user_id
    left join {{ ref('stg_movies') }} as movies on events.movie_id = movies.movie_id
    where events.copy_number = 1

),

contested_sessions as (

    select distinct session_id from stream

),

uncontested as (

    {#- Silver history is unique per session (stg_watch_history's unique test), so a landed session no event
        claims is its own survivor: ranking it would sort 10.5 M rows at scale 100 for nothing. #}
    select history.*, cast(1 as {{ dbt.type_bigint() }}) as position_in_session
    from history
    left join contested_sessions as contested on history.session_id = contested.session_id
    where contested.session_id is null

),

contested as (

    select
        candidates.*,
        row_number() over (
            partition by candidates.session_id
            order by case when candidates.rejection_reason is null then 0 else 1 end,
                     case when candidates.origin = 'history' then 0 else 1 end,
                     candidates.event_time desc,
                     candidates.event_id
        ) as position_in_session
    from (
        select history.*
        from history
        inner join contested_sessions as contested on history.session_id = contested.session_id
        union all
        select * from stream
    ) as candidates

),

ranked as (

    select * from uncontested
    union all
    select * from contested

)

select
    ranked.session_id,
    ranked.user_id,
    ranked.movie_id,
    ranked.event_time,
    ranked.watch_date,
    {{ month_start('ranked.watch_date') }} as watch_month,
    {{ window_start('ranked.event_time') }} as window_start,
    ranked.device_type,
    ranked.watch_duration_minutes,
    ranked.progress_percentage,
    ranked.action,
    ranked.quality,
    ranked.location_country,
    ranked.is_download,
    ranked.user_rating,
    ranked.origin,
    ranked.event_id,
    ranked.batch_id,
    ranked.source_file,
    ranked.source_line,
    ranked.rejection_reason,
    case when ranked.rejection_reason is null then ranked.position_in_session end as session_rank,
    users.country as user_country,
    users.subscription_plan as user_subscription_plan,
    coalesce(users.country, ranked.location_country, '{{ var("unknown_label") }}') as segment_country,
    {{ segment('movies.genre_primary') }} as segment_genre_primary,
    {{ segment('ranked.device_type') }} as segment_device_type,
    {{ segment('ranked.quality') }} as segment_quality,
    movies.is_netflix_original as segment_is_netflix_original,
    {{ segment('movies.content_type') }} as segment_content_type,
    coalesce(ranked.progress_percentage < 20, false) as is_low_engagement,
    coalesce(ranked.action = 'stopped' and ranked.progress_percentage < 50, false) as is_abandoned,
    coalesce(ranked.action = 'completed', false) as is_completed,
    coalesce({{ quality_rank('ranked.quality') }} < usual.usual_quality_rank, false) as is_quality_downgrade

from ranked
left join {{ ref('stg_users') }} as users on ranked.user_id = users.user_id
left join {{ ref('stg_movies') }} as movies on ranked.movie_id = movies.movie_id
left join {{ ref('int_user_usual_quality') }} as usual on ranked.user_id = usual.user_id
