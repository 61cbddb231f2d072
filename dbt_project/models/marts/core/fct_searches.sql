with searches as (

    select * from {{ ref('stg_search_logs') }}

)

select
    search_id,
    user_id,
    search_date,
    search_query,
    results_returned,
    clicked_result_position,
    clicked_result_position is not null as has_click,
    device_type,
    search_duration_seconds,
    had_typo,
    used_filters,
    location_country,
    source_file,
    source_line

from searches
