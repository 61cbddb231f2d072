{#
  The session fact of the star: its keys, measures and the per-session derivations (calendar year and
  month, completion) from int_watch_sessions_enriched, without the segment labels, which belong to the
  dimensions.
#}
with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

)

select
    session_id,
    user_id,
    movie_id,
    watch_date,
    watch_month,
    watch_year,
    watch_month_of_year,
    device_type,
    watch_duration_minutes,
    progress_percentage,
    action,
    is_completed,
    quality,
    location_country,
    is_download,
    user_rating,
    source_file,
    source_line,
    event_time,
    origin,
    event_id

from sessions
