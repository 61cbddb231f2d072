{{ config(meta={'dagster': {'ref': {'name': 'content_performance'}}}) }}
-- Each session falls in exactly one (month, genre): views and minutes add up to the fact table's; a
-- genre cannot show more distinct titles in a month than it has in the catalogue; ratings stay in 1-5.
with mart as (

    select
        sum(total_views) as views,
        sum(total_watch_time_minutes) as minutes
    from {{ ref('content_performance') }}

),

facts as (

    select
        count(*) as views,
        coalesce(sum(watch_duration_minutes), 0) as minutes
    from {{ ref('fct_watch_sessions') }}

)

select 'totals' as failure, mart.views as mart_value, facts.views as expected_value
from mart cross join facts
where mart.views != facts.views or mart.minutes != facts.minutes

union all

select 'more titles than catalogue', monthly.unique_movies, genres.catalogue_titles
from {{ ref('content_performance') }} as monthly
inner join {{ ref('genre_performance') }} as genres on monthly.genre_primary = genres.genre_primary
where monthly.unique_movies > genres.catalogue_titles

union all

select 'rating out of 1-5', total_views, null
from {{ ref('content_performance') }}
where avg_rating < 1 or avg_rating > 5
