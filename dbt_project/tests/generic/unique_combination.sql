{#
  A mart's grain: no two rows share the values of `columns` (dbt has no built-in multi-column unique
  test and this project installs no packages, so it runs offline).
#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
