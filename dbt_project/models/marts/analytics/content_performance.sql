with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

)

select
    watch_year as year,
    watch_month_of_year as month,
    watch_month as month_start,
    genre_primary,
    {{ ratio('sum(user_rating)', 'count(user_rating)') }} as avg_rating,
    count(*) as total_views,
    coalesce(sum(watch_duration_minutes), cast(0 as {{ money_type() }})) as total_watch_time_minutes,
    count(distinct movie_id) as unique_movies,
    count(distinct user_id) as unique_users

from sessions
group by watch_year, watch_month_of_year, watch_month, genre_primary
