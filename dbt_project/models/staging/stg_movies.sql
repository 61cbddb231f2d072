with source as (

    select * from {{ source('silver', 'movies') }}

),

renamed as (

    select
        movie_id,
        title,
        content_type,
        genre_primary,
        genre_secondary,
        release_year,
        duration_minutes,
        rating as maturity_rating,
        language,
        country_of_origin,
        imdb_rating,
        {{ to_money('production_budget') }} as production_budget,
        {{ to_money('box_office_revenue') }} as box_office_revenue,
        number_of_seasons,
        number_of_episodes,
        is_netflix_original,
        added_to_platform,
        content_warning,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
