{#
  Each session with the segment attributes the marts group by. Left joins so that a session whose user or
  movie were missing would still count (under the `unknown_label`) instead of vanishing from the totals;
  the relationships tests on fct_watch_sessions make that case fail loudly anyway.
  Segments use the user's *current* country and plan (dim_users is type 1).
#}
with sessions as (

    select * from {{ ref('fct_watch_sessions') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

movies as (

    select * from {{ ref('dim_movies') }}

)

select
    sessions.session_id,
    sessions.user_id,
    sessions.movie_id,
    sessions.watch_date,
    sessions.watch_month,
    cast(extract(year from sessions.watch_date) as {{ dbt.type_int() }}) as watch_year,
    cast(extract(month from sessions.watch_date) as {{ dbt.type_int() }}) as watch_month_of_year,
    sessions.watch_duration_minutes,
    sessions.user_rating,
    sessions.action,
    users.country as user_country,
    {{ segment('users.country') }} as country,
    {{ segment('users.subscription_plan') }} as subscription_plan,
    {{ segment('movies.genre_primary') }} as genre_primary

from sessions
left join users on sessions.user_id = users.user_id
left join movies on sessions.movie_id = movies.movie_id
