select
    cast(date as date) as holiday_date,
    upper(region) as region,
    holiday_name,
    lower(store_closed) in ('true', '1', 'yes') as store_closed
from {{ source('landing', 'raw_holidays') }}
