{# One row per primary genre of the catalogue, all time; a genre nobody watched shows zeros. #}
with catalogue as (

    select
        {{ segment('genre_primary') }} as genre_primary,
        count(*) as catalogue_titles
    from {{ ref('dim_movies') }}
    group by {{ segment('genre_primary') }}

),

views as (

    select
        genre_primary,
        count(*) as total_views,
        sum(watch_duration_minutes) as total_watch_time_minutes,
        count(watch_duration_minutes) as timed_views,
        count(distinct movie_id) as unique_movies,
        count(distinct user_id) as unique_users,
        sum(user_rating) as rating_sum,
        count(user_rating) as rating_count
    from {{ ref('int_watch_sessions_enriched') }}
    group by genre_primary

),

reviews as (

    select
        {{ segment('movies.genre_primary') }} as genre_primary,
        count(*) as total_reviews,
        sum(reviews.rating) as review_rating_sum,
        count(reviews.rating) as review_rating_count
    from {{ ref('fct_reviews') }} as reviews
    inner join {{ ref('dim_movies') }} as movies on reviews.movie_id = movies.movie_id
    group by {{ segment('movies.genre_primary') }}

)

select
    catalogue.genre_primary,
    catalogue.catalogue_titles,
    coalesce(views.total_views, 0) as total_views,
    coalesce(views.total_watch_time_minutes, cast(0 as {{ money_type() }})) as total_watch_time_minutes,
    {{ ratio('views.total_watch_time_minutes', 'views.timed_views') }} as avg_watch_duration,
    coalesce(views.unique_movies, 0) as unique_movies,
    coalesce(views.unique_users, 0) as unique_users,
    {{ ratio('views.rating_sum', 'views.rating_count') }} as avg_rating,
    coalesce(reviews.total_reviews, 0) as total_reviews,
    {{ ratio('reviews.review_rating_sum', 'reviews.review_rating_count') }} as avg_review_rating

from catalogue
left join views on catalogue.genre_primary = views.genre_primary
left join reviews on catalogue.genre_primary = reviews.genre_primary
