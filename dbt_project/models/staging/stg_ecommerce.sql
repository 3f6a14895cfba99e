-- E-commerce order lines (JSONL, UTC timestamps, fulfilling store). Parsed here, validated downstream.
with raw as (
    select _raw, _file, _line, json_valid(_raw) as is_json
    from {{ source('landing', 'raw_ecommerce') }}
)
select
    'ecommerce' as channel,
    _file as source_file,
    _line as source_line,
    is_json,
    case when is_json then (_raw ->> 'order_id') || '/' || coalesce(_raw ->> 'line', '1') end as record_key,
    {{ json_field('fulfilling_store') }} as store_id,
    {{ json_field('sku') }} as item_id,
    {{ json_field('ordered_at') }} as ordered_at_text,
    {{ json_field('ordered_at', 'timestamptz') }} as ordered_at_utc,
    {{ json_field('quantity') }} as qty_text,
    {{ plain_integer(json_field('quantity')) }} as qty,
    {{ json_field('unit_price', 'decimal(18, 4)') }} as unit_price,
    case when is_json then upper(_raw ->> 'currency') end as currency,
    case when is_json then nullif(_raw ->> 'promo_code', '') end as promo_code
from raw
