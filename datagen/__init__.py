"""Kaggle-shaped synthetic data: the six CSVs of the "Netflix 2025 User Behavior Dataset", at any scale.

``generate(bucket, scale, seed)`` writes ``raw/<table>.csv`` with exactly the columns of
``raw_schema.RAW_COLUMNS``. At ``scale=1`` sizes and dirt match the public dataset; every count grows
linearly with ``scale`` (scale 100 = 10.5M watch rows) in bounded memory, and the same (seed, scale)
gives the same bytes. The numbers live in ``spec.py``; this is what a pipeline reading the files meets:

Sizes at scale 1 (rows = distinct keys + duplicate rows)
    users 10,000 + 300 exact copies; movies 1,000 + 40 exact copies; watch_history 105,000 of which 4.5%
    repeat an earlier session_id (3,780 exact copies, 945 with the same session/user/movie/day but other
    measurements); reviews 15,000 + 450; search_logs 25,000 + 1,500; recommendation_logs 52,000 (no
    duplicates). Duplicates always come after the row they repeat, within the same 100k-row chunk.
Missing values (empty fields)
    users: age 12%, gender 8%, monthly_spend 10%, household_size 15%. movies: genre_secondary 64%,
    imdb_rating 14%, production_budget 65%, box_office_revenue for non-movies and 30% of movies,
    seasons/episodes for non-series. watch_history: watch_duration_minutes 12%, progress_percentage 8%,
    user_rating 80%. reviews: helpful_votes and total_votes 12% (together), review_text 5%,
    sentiment_score 8%. search_logs: clicked_result_position ~51% (always when 0 results),
    search_duration_seconds 5%. recommendation_logs: recommendation_score 10%.
Outliers and oddities (valid data Silver keeps, flagged or not)
    ages -15..-1 (1%) and 101..120 (1%); monthly_spend 200–1,000 (3%); emails shared by several user_ids
    (2% of users); titles of 0–10 minutes or 5–10 hours (1.5%); watch sessions of 0 minutes (1% set to 0,
    plus ~1% more from 0–10-minute titles) and of 300–780 minutes (1.5%, plus a few long series binges).
Rows Silver must reject (docs/data-quality.md)
    orphans: 0.5% of watch_history, reviews and recommendation_logs rows carry a user_id (half) or
    movie_id (half) numbered past the last user/title; search_logs has none. Out of range: 0.05% of
    watch rows have a negative watch_duration_minutes (rule 4) and 0.05% a progress_percentage of
    100.5–125 (rule 5). Nothing malformed: every line has the header's field count.
Behaviour the marts should find
    users sign up from 2022 (growing), churn with a hazard set by plan (Basic highest, Premium+ lowest)
    and signup month (Nov/Dec and summer cohorts worst); ~15% are churned (is_active False) and have no
    activity from their churn day on. Activity is dated 2024-01-01..2025-12-31, proportional to a user's
    engagement (higher on richer plans) inside their active window. Premium+ sessions are longer and
    finish more often; Documentary/History titles finish least. progress follows action (completed
    90–100, stopped mostly < 40, started < 25). Quality follows plan. Review sentiment follows the rating
    (94%); click-through falls with list position and rises with recommendation_score.
Format (the public dataset's, so tests meet what users' files contain)
    header row, comma-separated, quoting only where needed (review_text), booleans True/False, dates
    YYYY-MM-DD, users.created_at YYYY-MM-DD HH:MM:SS.ffffff, missing = empty field. Numbers as pandas
    writes them: float columns always with a decimal point (105.0, 8.6), including the whole-number
    columns the public files hold as floats (age, household_size, duration_minutes, production_budget,
    box_office_revenue, number_of_seasons/episodes, user_rating, helpful/total_votes,
    clicked_result_position: 43.0); release_year, reviews.rating, results_returned and position_in_list
    as plain integers. Ids as the public files write them: user_00001, movie_0001, session_000001,
    review_000001, search_000001, rec_000001, widened only when a scale needs more digits (scale 10:
    user_000001, movie_00001, session_0000001), so at scale <= 1 generated and real files share ids.
"""

from datagen.generator import GeneratedTable, generate, generate_tables, planned_rows

__all__ = ["GeneratedTable", "generate", "generate_tables", "planned_rows"]
