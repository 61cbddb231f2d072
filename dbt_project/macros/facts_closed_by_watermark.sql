{#
  The master dataset's sessions whose period is closed by the batch watermark W (`period_end`, an
  expression over `facts`, at or before W): what every batch-side serving model aggregates. A CTE body.
#}
{% macro facts_closed_by_watermark(period_end) -%}
    select facts.*
    from {{ ref('int_watch_facts_master') }} as facts
    cross join {{ ref('int_batch_watermark') }} as watermark
    where {{ period_end }} <= watermark.batch_watermark
{%- endmacro %}
