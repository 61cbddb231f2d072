with source as (

    select * from {{ source('silver', 'users') }}

),

renamed as (

    select
        user_id,
        email,
        first_name,
        last_name,
        age,
        age_flagged,
        gender,
        country,
        state_province,
        city,
        subscription_plan,
        subscription_start_date,
        is_active,
        {{ to_money('monthly_spend') }} as monthly_spend,
        monthly_spend_flagged,
        primary_device,
        household_size,
        created_at,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
