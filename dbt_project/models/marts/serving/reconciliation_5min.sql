{{ config(materialized='view') }}
{#
  The speed layer against batch truth, window by window, on the periods both cover: every window of the
  speed layer's published table that ends at or before the batch watermark W (docs/serving.md). The batch
  side counts the master dataset's sessions that came from the stream's events (landed history rows are
  not the speed layer's to count), so on a clean run the two agree exactly. Each difference is explained
  by its causes, per measure:
    + late        events behind the stream's watermark: left out of its windows, counted by the batch;
    - rejected    counted events the batch layer's Silver rules reject (orphan user or movie);
    - superseded  counted events that lost to another record of their session (history row or newer event);
  unexplained = (batch - speed) - (late - rejected - superseded), zero unless a layer is wrong. Dead letters
  and re-sent duplicates are kept out of both layers: the check reports their counts (batch_watermark).
#}
{%- set measures = [
    ('sessions', '1', 'total_sessions'),
    ('watch_minutes', 'coalesce(cast(watch_duration_minutes as ' ~ float64_type() ~ '), 0)', 'total_watch_minutes'),
    ('completions', 'case when is_completed then 1 else 0 end', 'completion_count'),
    ('low_engagement', 'case when is_low_engagement then 1 else 0 end', 'low_engagement_count'),
    ('abandoned', 'case when is_abandoned then 1 else 0 end', 'abandonment_count'),
    ('quality_downgrades', 'case when is_quality_downgrade then 1 else 0 end', 'quality_downgrade_count'),
] -%}
with watermark as (

    select batch_watermark from {{ ref('batch_watermark') }}

),

speed as (

    select
        {{ utc_timestamp('realtime.window_start') }} as window_start,
        {%- for name, _, column in measures %}
        sum(cast(realtime.{{ column }} as {{ float64_type() }})) as speed_{{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ source('realtime', 'engagement_health_realtime') }} as realtime
    cross join watermark
    where {{ utc_timestamp('realtime.window_end') }} <= watermark.batch_watermark
    group by {{ utc_timestamp('realtime.window_start') }}

),

events as (

    select * from {{ ref('int_watch_candidates') }}
    where origin <> 'history'
      and window_start in (select window_start from speed)

),

batch as (

    select
        window_start,
        count(case when origin = 'stream_late' then 1 end) as late_events,
        {%- for name, value, _ in measures %}
        sum(case when session_rank = 1 then {{ value }} else 0 end) as batch_{{ name }},
        sum(case when origin = 'stream_late' and session_rank = 1 then {{ value }} else 0 end) as late_{{ name }},
        sum(case when origin = 'stream' and rejection_reason is not null then {{ value }} else 0 end)
            as rejected_{{ name }},
        sum(case when origin = 'stream' and session_rank > 1 then {{ value }} else 0 end) as superseded_{{ name }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from events
    group by window_start

)

select
    speed.window_start,
    {{ dbt.dateadd('minute', var('window_minutes'), 'speed.window_start') }} as window_end,
    coalesce(batch.late_events, 0) as late_events,
    {%- for name, _, _ in measures %}
    speed.speed_{{ name }},
    cast(coalesce(batch.batch_{{ name }}, 0) as {{ float64_type() }}) as batch_{{ name }},
    cast(coalesce(batch.late_{{ name }}, 0) as {{ float64_type() }}) as late_{{ name }},
    cast(coalesce(batch.rejected_{{ name }}, 0) as {{ float64_type() }}) as rejected_{{ name }},
    cast(coalesce(batch.superseded_{{ name }}, 0) as {{ float64_type() }}) as superseded_{{ name }}
    {{- "," if not loop.last }}
    {%- endfor %}

from speed
left join batch on speed.window_start = batch.window_start
