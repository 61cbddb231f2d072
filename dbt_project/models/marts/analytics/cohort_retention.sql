{#
  Cohort = the month of a user's first viewing session. One row per cohort and month in which at least one
  of its users watched something (months with no returning user have no row).
#}
with activity as (

    select distinct user_id, watch_month as activity_month
    from {{ ref('fct_watch_sessions') }}

),

cohorts as (

    select user_id, min(activity_month) as cohort_month
    from activity
    group by user_id

),

cohort_sizes as (

    select cohort_month, count(*) as cohort_size
    from cohorts
    group by cohort_month

),

cohort_activity as (

    select
        cohorts.cohort_month,
        activity.activity_month,
        count(*) as active_users
    from activity
    inner join cohorts on activity.user_id = cohorts.user_id
    group by cohorts.cohort_month, activity.activity_month

)

select
    cohort_activity.cohort_month,
    cohort_activity.activity_month,
    {{ dbt.datediff('cohort_activity.cohort_month', 'cohort_activity.activity_month', 'month') }} as months_since_cohort,
    cohort_activity.active_users,
    cohort_sizes.cohort_size,
    {{ ratio('cohort_activity.active_users', 'cohort_sizes.cohort_size', 4) }} as retention_rate

from cohort_activity
inner join cohort_sizes on cohort_activity.cohort_month = cohort_sizes.cohort_month
