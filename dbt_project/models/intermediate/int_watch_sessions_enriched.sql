{#
  Each session of the master dataset (int_watch_facts_master: landed history plus the speed layer's
  accepted events before the batch watermark W) with what every mart derives from it: its calendar year
  and month, whether it was completed, and the segment attributes the marts group by. The one place
  sessions are joined to users and movies for the marts (fct_watch_sessions publishes the session grain
  from here). Left joins so that a session whose user or movie were missing would still
  count (under the `unknown_label`) instead of vanishing from the totals; the relationships tests on
  fct_watch_sessions make that case fail loudly anyway.
  Segments use the user's *current* country and plan (the users dimension is type 1).
#}
with sessions as (

    select * from {{ ref('int_watch_facts_master') }}

),

users as (

    select * from {{ ref('stg_users') }}

),

movies as (

    select * from {{ ref('stg_movies') }}

)

select
    sessions.session_id,
    sessions.user_id,
    sessions.movie_id,
    sessions.watch_date,
    sessions.watch_month,
    cast(extract(year from sessions.watch_date) as {{ dbt.type_int() }}) as watch_year,
    cast(extract(month from sessions.watch_date) as {{ dbt.type_int() }}) as watch_month_of_year,
    sessions.device_type,
    sessions.watch_duration_minutes,
    sessions.progress_percentage,
    sessions.action,
    coalesce(sessions.action = 'completed', false) as is_completed,
    sessions.quality,
    sessions.location_country,
    sessions.is_download,
    sessions.user_rating,
    sessions.source_file,
    sessions.source_line,
    sessions.event_time,
    sessions.origin,
    sessions.event_id,
    users.country as user_country,
    {{ segment('users.country') }} as country,
    {{ segment('users.subscription_plan') }} as subscription_plan,
    {{ segment('movies.genre_primary') }} as genre_primary

from sessions
left join users on sessions.user_id = users.user_id
left join movies on sessions.movie_id = movies.movie_id
