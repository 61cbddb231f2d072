{# Low-engagement, abandonment and completion rates of a row holding the engagement counts (4 decimals). #}
{% macro engagement_rates() -%}
    {{ ratio('low_engagement_count', 'total_sessions', 4) }} as low_engagement_rate,
    {{ ratio('abandonment_count', 'total_sessions', 4) }} as abandonment_rate,
    {{ ratio('completion_count', 'total_sessions', 4) }} as completion_rate
{%- endmacro %}
