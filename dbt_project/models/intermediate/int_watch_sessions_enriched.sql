{{ config(materialized='view') }}
{#
  Each session of the master dataset (int_watch_facts_master: landed history plus the speed layer's
  accepted events before the batch watermark W) with what every mart derives from it: its calendar year
  and month, whether it was completed, and the segment attributes the marts group by. fct_watch_sessions
  publishes the session grain from here.

  A view, not a table: int_watch_candidates already joined every record to its user and title once (left
  joins, so a session whose user or movie were missing still counts under the `unknown_label` instead of
  vanishing; the relationships tests on fct_watch_sessions make that case fail loudly anyway). Storing the
  same 10.5 M sessions a second time cost 11 s of a scale-100 build and repeated those joins
  (docs/benchmarks.md, "Batch layer at scale 100, third round").
  Segments use the user's *current* country and plan (the users dimension is type 1).
#}
with sessions as (

    select
        facts.*,
        cast(extract(year from facts.watch_date) as {{ dbt.type_int() }}) as watch_year,
        cast(extract(month from facts.watch_date) as {{ dbt.type_int() }}) as watch_month_of_year
    from {{ ref('int_watch_facts_master') }} as facts

)

select
    {{ watch_session_columns() }},
    user_country,
    {{ segment('user_country') }} as country,
    {{ segment('user_subscription_plan') }} as subscription_plan,
    segment_genre_primary as genre_primary

from sessions
