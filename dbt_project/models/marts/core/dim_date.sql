{#
  Every calendar day of the months from the earliest to the latest event date of any fact table, so the
  month_start of every mart row is a day here too. The span comes from
  the data (no hard-coded calendar to outgrow) and the day numbers from a cross join of digits, because
  dbt.date_spine queries the warehouse at compile time and would break the offline BigQuery compile.
  Five digits cover 100,000 days (273 years).
#}
with event_dates as (

    select watch_date as event_date from {{ ref('int_watch_facts_master') }}
    union all
    select review_date from {{ ref('stg_reviews') }}
    union all
    select search_date from {{ ref('stg_search_logs') }}
    union all
    select recommendation_date from {{ ref('stg_recommendation_logs') }}

),

months as (

    select
        {{ month_start('min(event_date)') }} as first_month,
        {{ month_start('max(event_date)') }} as last_month
    from event_dates

),

bounds as (

    -- Whole months, so every month_start of a mart is a day of this dimension.
    select
        first_month as first_date,
        cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'last_month')) }} as date) as last_date
    from months

),

digits as (

    select 0 as n union all select 1 union all select 2 union all select 3 union all select 4
    union all select 5 union all select 6 union all select 7 union all select 8 union all select 9

),

day_offsets as (

    select d1.n + 10 * d2.n + 100 * d3.n + 1000 * d4.n + 10000 * d5.n as day_offset
    from digits as d1
    cross join digits as d2
    cross join digits as d3
    cross join digits as d4
    cross join digits as d5

),

days as (

    select cast({{ dbt.dateadd('day', 'day_offsets.day_offset', 'bounds.first_date') }} as date) as date_day
    from bounds
    cross join day_offsets
    where day_offsets.day_offset <= {{ dbt.datediff('bounds.first_date', 'bounds.last_date', 'day') }}

)

select
    date_day,
    cast(extract(year from date_day) as {{ dbt.type_int() }}) as year,
    cast(extract(quarter from date_day) as {{ dbt.type_int() }}) as quarter,
    cast(extract(month from date_day) as {{ dbt.type_int() }}) as month,
    cast(extract(day from date_day) as {{ dbt.type_int() }}) as day_of_month,
    {{ iso_day_of_week('date_day') }} as iso_day_of_week,
    {{ iso_day_of_week('date_day') }} in (6, 7) as is_weekend,
    {{ month_start('date_day') }} as month_start

from days
