-- Per store x forecast day x issue: the temperature forecast a model may use, accepted rows only. A region's
-- forecast stands for each of its stores unless the store has its own for the same day and issue.
with accepted as (
    select * from {{ ref('int_weather_forecasts') }} where quarantine_reason is null and not is_duplicate
),
per_store as (
    select store_id, forecast_date, issued_at, temperature_min_c, temperature_max_c, temperature_mean_c,
           precipitation_mm, 'store' as issued_for, source_file, source_line
    from accepted where store_id is not null
    union all
    select s.store_id, a.forecast_date, a.issued_at, a.temperature_min_c, a.temperature_max_c, a.temperature_mean_c,
           a.precipitation_mm, 'region' as issued_for, a.source_file, a.source_line
    from accepted a join {{ ref('stg_stores') }} s on s.region = a.region
    where a.store_id is null
)
select
    store_id, forecast_date, issued_at,
    forecast_date - cast(issued_at at time zone 'UTC' as date) as lead_days,
    temperature_min_c, temperature_max_c, temperature_mean_c, precipitation_mm, issued_for, source_file, source_line
from per_store
qualify row_number() over (
    partition by store_id, forecast_date, issued_at order by issued_for = 'store' desc, source_file, source_line
) = 1
order by store_id, forecast_date, issued_at
