with recommendations as (

    select * from {{ ref('stg_recommendation_logs') }}

)

select
    recommendation_id,
    user_id,
    movie_id,
    recommendation_date,
    recommendation_type,
    recommendation_score,
    was_clicked,
    position_in_list,
    device_type,
    time_of_day,
    algorithm_version,
    source_file,
    source_line

from recommendations
