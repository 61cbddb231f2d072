{{ config(meta={'dagster': {'ref': {'name': 'monthly_active_users_by_segment'}}}) }}
-- Country x plan segments partition a month's active users: each share is at most 1 and a month's
-- shares add up to 1, give or take the 4-decimal rounding of each share.
with months as (

    select
        month_start,
        sum(share_of_monthly_active_users) as total_share,
        count(*) as segments
    from {{ ref('monthly_active_users_by_segment') }}
    group by month_start

)

select month_start, total_share, segments
from months
where abs(total_share - 1) > 0.00005 * segments

union all

select month_start, share_of_monthly_active_users, monthly_active_users
from {{ ref('monthly_active_users_by_segment') }}
where share_of_monthly_active_users > 1 or share_of_monthly_active_users <= 0
