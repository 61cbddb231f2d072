with source as (

    select * from {{ source('silver', 'search_logs') }}

),

renamed as (

    select
        search_id,
        user_id,
        search_query,
        search_date,
        results_returned,
        clicked_result_position,
        device_type,
        search_duration_seconds,
        had_typo,
        used_filters,
        location_country,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
