{{ config(materialized='view') }}
{#
  The master dataset of watch facts: one row per session, the survivor of int_watch_candidates under the
  one de-duplication rule (docs/serving.md): landed history up to its end and every event the speed layer
  accepted (counted or late) before the batch watermark W, re-sent events collapsed, rejected events out.
#}
select *
from {{ ref('int_watch_candidates') }}
where session_rank = 1
