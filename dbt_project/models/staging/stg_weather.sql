-- Issued weather forecasts, typed: one row per store (or region) x forecast day x issue. Values as sent kept
-- beside the typed ones for quarantine.
select
    _file as source_file,
    _line as source_line,
    nullif(store_id, '') as store_id,
    nullif(region, '') as region,
    issued_at as issued_at_text,
    try_cast(issued_at as timestamptz) as issued_at,
    date as forecast_date_text,
    try_cast(date as date) as forecast_date,
    try_cast(temperature_min_c as double) as temperature_min_c,
    try_cast(temperature_max_c as double) as temperature_max_c,
    try_cast(temperature_mean_c as double) as temperature_mean_c,
    try_cast(precipitation_mm as double) as precipitation_mm,
    temperature_min_c is not null and try_cast(temperature_min_c as double) is null
        or temperature_max_c is not null and try_cast(temperature_max_c as double) is null
        or temperature_mean_c is null or try_cast(temperature_mean_c as double) is null
        or precipitation_mm is not null and try_cast(precipitation_mm as double) is null as has_unparseable_value
from {{ source('landing', 'raw_weather') }}
