{#
  The session fact of the star: its keys, measures and the per-session derivations (calendar year and
  month, completion) from int_watch_sessions_enriched, without the segment labels, which belong to the
  dimensions.
#}
with sessions as (

    select * from {{ ref('int_watch_sessions_enriched') }}

)

select
    {{ watch_session_columns() }}

from sessions
