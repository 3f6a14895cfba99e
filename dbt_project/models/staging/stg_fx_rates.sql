select
    cast(date as date) as rate_date,
    upper(currency) as currency,
    cast(usd_per_unit as double) as usd_per_unit
from {{ source('landing', 'raw_fx_rates') }}
