{#
  One row per subscriber, current attributes only (Silver keeps one row per user_id). Names and e-mail
  stay in staging: nothing downstream needs them, so the gold layer carries no direct identifiers.
#}
with users as (

    select * from {{ ref('stg_users') }}

)

select
    user_id,
    age,
    age_flagged,
    gender,
    country,
    state_province,
    city,
    subscription_plan,
    subscription_start_date,
    is_active,
    monthly_spend,
    monthly_spend_flagged,
    primary_device,
    household_size,
    created_at

from users
