{{ config(materialized='view') }}
{#
  Monthly active users per country and plan, merged across the batch watermark W as a true distinct count
  (docs/serving.md): the viewers of the month in the batch facts (event times before W) united with the
  viewers the speed layer counted in a window from W on (user_activity_realtime keeps, per month and user,
  the newest such window); a viewer in both is counted once. Segments are the viewer's current country and
  plan from dim_users (Unknown for a viewer Silver does not know yet), one per viewer, so the segments of a
  month add up to its total. Months before W's month come from the batch alone.
#}
with watermark as (

    select batch_watermark from {{ ref('batch_watermark') }}

),

batch_viewers as (

    select distinct watch_month as month_start, user_id
    from {{ ref('fct_watch_sessions') }}

),

speed_viewers as (

    select distinct activity.month_start, activity.user_id
    from {{ source('realtime', 'user_activity_realtime') }} as activity
    cross join watermark
    where {{ utc_timestamp('activity.last_window_start') }} >= watermark.batch_watermark

),

viewers as (

    select month_start, user_id, max(in_batch) as in_batch, max(in_speed) as in_speed
    from (
        select month_start, user_id, 1 as in_batch, 0 as in_speed from batch_viewers
        union all
        select month_start, user_id, 0 as in_batch, 1 as in_speed from speed_viewers
    ) as both_layers
    group by month_start, user_id

),

segmented as (

    select
        viewers.month_start,
        {{ segment('users.country') }} as country,
        {{ segment('users.subscription_plan') }} as subscription_plan,
        viewers.in_batch,
        viewers.in_speed
    from viewers
    left join {{ ref('dim_users') }} as users on viewers.user_id = users.user_id

)

select
    month_start,
    cast(extract(year from month_start) as {{ dbt.type_int() }}) as year,
    cast(extract(month from month_start) as {{ dbt.type_int() }}) as month,
    country,
    subscription_plan,
    count(*) as monthly_active_users,
    sum(in_batch) as batch_users,
    sum(case when in_batch = 0 then 1 else 0 end) as speed_only_users,
    case
        when sum(in_speed) = 0 then 'batch'
        when sum(in_batch) = 0 then 'speed'
        else 'batch+speed'
    end as served_from

from segmented
group by month_start, country, subscription_plan
