{#
  Events the speed layer accepted that the batch layer's Silver rules reject (docs/data-quality.md rules 6-7:
  a user or movie that Silver does not hold, e.g. after a Silver refresh), one row per event with its reason,
  like the quarantine of a CSV row. Never counted in the master dataset.
#}
select
    event_id,
    session_id,
    user_id,
    movie_id,
    event_time,
    origin,
    batch_id,
    source_file,
    rejection_reason as reason

from {{ ref('int_watch_candidates') }}
where rejection_reason is not null
