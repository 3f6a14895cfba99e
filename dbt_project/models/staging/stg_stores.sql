select
    store_id,
    upper(region) as region,
    timezone,
    upper(currency) as currency,
    cast(opened_on as date) as opened_on,
    climate_zone,
    coalesce(closed_weekdays, '') as closed_weekdays
from {{ source('landing', 'raw_stores') }}
