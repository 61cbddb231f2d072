with sessions as (

    select * from {{ ref('stg_watch_history') }}

)

select
    session_id,
    user_id,
    movie_id,
    watch_date,
    watch_month,
    device_type,
    watch_duration_minutes,
    progress_percentage,
    action,
    quality,
    location_country,
    is_download,
    user_rating,
    source_file,
    source_line

from sessions
