with source as (

    select * from {{ source('silver', 'recommendation_logs') }}

),

renamed as (

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
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
