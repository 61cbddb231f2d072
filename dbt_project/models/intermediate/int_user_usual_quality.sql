{#
  A user's usual quality class: the most frequent class of their Silver watch history, ties towards the
  lower class, so a session counts as a downgrade only when it ranks below every one of the user's most
  frequent classes. The speed layer flags downgrades against the same definition (streaming/dimensions.py),
  from the same Silver, so both layers flag the same sessions.
#}
with ranked_sessions as (

    select user_id, {{ quality_rank('quality') }} as quality_rank
    from {{ ref('stg_watch_history') }}

),

class_counts as (

    select user_id, quality_rank, count(*) as sessions
    from ranked_sessions
    where quality_rank is not null
    group by user_id, quality_rank

),

ordered as (

    select
        user_id,
        quality_rank,
        row_number() over (partition by user_id order by sessions desc, quality_rank) as preference
    from class_counts

)

select user_id, quality_rank as usual_quality_rank
from ordered
where preference = 1
