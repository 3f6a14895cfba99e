select
    promo_code,
    upper(region) as region,
    sku as item_id,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(discount_pct as integer) as discount_pct
from {{ source('landing', 'raw_promotions') }}
