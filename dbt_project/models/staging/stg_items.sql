select
    sku as item_id,
    item_name,
    category,
    color,
    cast(list_price_usd as decimal(18, 2)) as list_price_usd,
    cast(launched_on as date) as launched_on
from {{ source('landing', 'raw_items') }}
