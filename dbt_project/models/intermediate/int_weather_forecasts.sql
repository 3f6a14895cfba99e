-- Weather forecast rows with their fate: a quarantine reason, or a duplicate of an earlier copy of the same
-- forecast (same store or region, day and issue time; the first file and line received is the original).
with w as (
    select w.*,
           s.store_id is not null as store_known,
           r.region is not null as region_known
    from {{ ref('stg_weather') }} w
    left join {{ ref('stg_stores') }} s on s.store_id = w.store_id
    left join (select distinct region from {{ ref('stg_stores') }}) r on r.region = w.region
),
judged as (
    select
        *,
        case
            when issued_at is null then 'unparseable_timestamp'
            when forecast_date is null then 'unparseable_date'
            when store_id is null and region is null then 'no_store_or_region'
            when store_id is not null and not store_known then 'unknown_store'
            when store_id is null and not region_known then 'unknown_region'
            when has_unparseable_value then 'unparseable_value'
            when temperature_mean_c < {{ var('min_temperature_c') }} or temperature_mean_c > {{ var('max_temperature_c') }}
                 or temperature_min_c < {{ var('min_temperature_c') }} or temperature_max_c > {{ var('max_temperature_c') }}
                then 'temperature_out_of_range'
            when temperature_min_c > temperature_max_c
                 or temperature_mean_c < temperature_min_c or temperature_mean_c > temperature_max_c
                then 'temperature_min_mean_max_inconsistent'
            when precipitation_mm < 0 then 'negative_precipitation'
            -- a forecast is for the day it is issued or later (in UTC; a day's slack for time zones)
            when forecast_date < cast(issued_at at time zone 'UTC' as date) - 1 then 'forecast_before_issue'
        end as quarantine_reason
    from w
)
select
    source_file, source_line, store_id, region, issued_at, forecast_date,
    temperature_min_c, temperature_max_c, temperature_mean_c, precipitation_mm, quarantine_reason,
    quarantine_reason is null and row_number() over (
        partition by quarantine_reason is null, coalesce(store_id, ''), coalesce(region, ''), forecast_date, issued_at
        order by source_file, source_line
    ) > 1 as is_duplicate
from judged
