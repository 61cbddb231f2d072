{# A one-row model (the batch watermark of a build) has exactly one row. #}
{% test exactly_one_row(model) %}

select count(*) as rows_found
from {{ model }}
having count(*) <> 1

{% endtest %}
