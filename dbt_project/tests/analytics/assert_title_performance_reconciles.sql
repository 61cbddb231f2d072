{{ config(meta={'dagster': {'ref': {'name': 'content_performance_by_title'}}}) }}
-- Every title appears once and every session and review is counted against exactly one title.
with mart as (

    select
        count(*) as titles,
        sum(total_views) as views,
        sum(total_reviews) as reviews,
        sum(total_watch_time_minutes) as minutes
    from {{ ref('content_performance_by_title') }}

),

expected as (

    select
        (select count(*) from {{ ref('dim_movies') }}) as titles,
        (select count(*) from {{ ref('fct_watch_sessions') }}) as views,
        (select count(*) from {{ ref('fct_reviews') }}) as reviews,
        (select coalesce(sum(watch_duration_minutes), 0) from {{ ref('fct_watch_sessions') }}) as minutes

)

select 'totals' as failure, mart.views as mart_value, expected.views as expected_value
from mart cross join expected
where mart.titles != expected.titles
   or mart.views != expected.views
   or mart.reviews != expected.reviews
   or mart.minutes != expected.minutes

union all

select 'completed above views', completed_views, total_views
from {{ ref('content_performance_by_title') }}
where completed_views > total_views or unique_users > total_views
