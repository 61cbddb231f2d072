with source as (

    select * from {{ source('silver', 'reviews') }}

),

renamed as (

    select
        review_id,
        user_id,
        movie_id,
        rating,
        review_date,
        {{ month_start('review_date') }} as review_month,
        device_type,
        is_verified_watch,
        helpful_votes,
        total_votes,
        review_text,
        sentiment,
        sentiment_score,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
