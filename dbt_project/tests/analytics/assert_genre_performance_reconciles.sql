{{ config(meta={'dagster': {'ref': {'name': 'genre_performance'}}}) }}
-- Genres partition the catalogue and the sessions: titles, views and minutes add up; a genre never shows
-- more distinct watched titles than it has titles.
with mart as (

    select
        sum(catalogue_titles) as titles,
        sum(total_views) as views,
        sum(total_watch_time_minutes) as minutes
    from {{ ref('genre_performance') }}

),

expected as (

    select
        (select count(*) from {{ ref('dim_movies') }}) as titles,
        (select count(*) from {{ ref('fct_watch_sessions') }}) as views,
        (select coalesce(sum(watch_duration_minutes), 0) from {{ ref('fct_watch_sessions') }}) as minutes

)

select 'totals' as failure, mart.views as mart_value, expected.views as expected_value
from mart cross join expected
where mart.titles != expected.titles or mart.views != expected.views or mart.minutes != expected.minutes

union all

select 'more watched titles than catalogue', unique_movies, catalogue_titles
from {{ ref('genre_performance') }}
where unique_movies > catalogue_titles
