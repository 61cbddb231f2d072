with source as (

    select * from {{ source('silver', 'watch_history') }}

),

renamed as (

    select
        session_id,
        user_id,
        movie_id,
        watch_date,
        {{ month_start('watch_date') }} as watch_month,
        device_type,
        {{ to_money('watch_duration_minutes') }} as watch_duration_minutes,
        progress_percentage,
        action,
        quality,
        location_country,
        is_download,
        user_rating,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
