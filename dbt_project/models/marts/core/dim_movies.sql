with movies as (

    select * from {{ ref('stg_movies') }}

)

select
    movie_id,
    title,
    content_type,
    genre_primary,
    genre_secondary,
    release_year,
    duration_minutes,
    maturity_rating,
    language,
    country_of_origin,
    imdb_rating,
    production_budget,
    box_office_revenue,
    number_of_seasons,
    number_of_episodes,
    is_netflix_original,
    added_to_platform,
    content_warning

from movies
