with reviews as (

    select * from {{ ref('stg_reviews') }}

)

select
    review_id,
    user_id,
    movie_id,
    review_date,
    review_month,
    rating,
    device_type,
    is_verified_watch,
    helpful_votes,
    total_votes,
    sentiment,
    sentiment_score,
    source_file,
    source_line

from reviews
