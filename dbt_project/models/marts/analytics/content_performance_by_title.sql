{# Every title of the catalogue, watched or not: a title nobody watched shows zeros, not a missing row. #}
with movies as (

    select * from {{ ref('dim_movies') }}

),

views as (

    select
        movie_id,
        count(*) as total_views,
        count(case when is_completed then 1 end) as completed_views,
        sum(watch_duration_minutes) as total_watch_time_minutes,
        count(watch_duration_minutes) as timed_views,
        count(distinct user_id) as unique_users,
        sum(user_rating) as rating_sum,
        count(user_rating) as rating_count,
        min(watch_date) as first_watch_date,
        max(watch_date) as last_watch_date
    from {{ ref('fct_watch_sessions') }}
    group by movie_id

),

reviews as (

    select
        movie_id,
        count(*) as total_reviews,
        sum(rating) as review_rating_sum,
        count(rating) as review_rating_count
    from {{ ref('fct_reviews') }}
    group by movie_id

)

select
    movies.movie_id,
    movies.title,
    movies.content_type,
    {{ segment('movies.genre_primary') }} as genre_primary,
    movies.release_year,
    coalesce(views.total_views, 0) as total_views,
    coalesce(views.completed_views, 0) as completed_views,
    coalesce(views.total_watch_time_minutes, cast(0 as {{ money_type() }})) as total_watch_time_minutes,
    {{ ratio('views.total_watch_time_minutes', 'views.timed_views') }} as avg_watch_duration,
    coalesce(views.unique_users, 0) as unique_users,
    {{ ratio('views.rating_sum', 'views.rating_count') }} as avg_rating,
    coalesce(reviews.total_reviews, 0) as total_reviews,
    {{ ratio('reviews.review_rating_sum', 'reviews.review_rating_count') }} as avg_review_rating,
    views.first_watch_date,
    views.last_watch_date

from movies
left join views on movies.movie_id = views.movie_id
left join reviews on movies.movie_id = reviews.movie_id
