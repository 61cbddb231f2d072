{{ config(meta={'dagster': {'ref': {'name': 'cohort_retention'}}}) }}
-- Cohorts partition the viewers: their sizes add up to the number of distinct users who ever watched.
with cohorts as (

    select distinct cohort_month, cohort_size
    from {{ ref('cohort_retention') }}

),

totals as (

    select
        (select sum(cohort_size) from cohorts) as users_in_cohorts,
        (select count(distinct user_id) from {{ ref('fct_watch_sessions') }}) as viewers

)

select * from totals
where users_in_cohorts != viewers
