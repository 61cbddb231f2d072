-- Every user belongs to exactly one cohort and is active in it by definition, so at month 0 all of the
-- cohort is active (retention 1); later months can never exceed the cohort, nor precede it.
select *
from {{ ref('cohort_retention') }}
where (months_since_cohort = 0 and (active_users != cohort_size or retention_rate != 1))
   or months_since_cohort < 0
   or active_users > cohort_size
   or retention_rate > 1
