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
    case when is_json then _raw ->> 'fulfilling_store' end as store_id,
    case when is_json then _raw ->> 'sku' end as item_id,
    case when is_json then _raw ->> 'ordered_at' end as ordered_at_text,
    case when is_json then try_cast(_raw ->> 'ordered_at' as timestamptz) end as ordered_at_utc,
    case when is_json then _raw ->> 'quantity' end as qty_text,
    case when is_json then try_cast(_raw ->> 'quantity' as bigint) end as qty,
    case when is_json then try_cast(_raw ->> 'unit_price' as decimal(18, 4)) end as unit_price,
    case when is_json then upper(_raw ->> 'currency') end as currency,
    case when is_json then nullif(_raw ->> 'promo_code', '') end as promo_code
from raw
