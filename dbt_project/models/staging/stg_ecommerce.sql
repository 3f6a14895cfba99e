-- E-commerce order lines (JSONL, UTC timestamps, fulfilling store). Parsed here, validated downstream.
with raw as (
    select r._raw, r._file, r._line, json_valid(r._raw) as is_json, f.sha256, f.ingested_at
    from {{ source('landing', 'raw_ecommerce') }} r
    left join {{ source('landing', '_ingest_files') }} f on f.file = r._file
)
select
    'ecommerce' as channel,
    _file as source_file,
    _line as source_line,
    sha256 as source_sha256,
    ingested_at as source_ingested_at,
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
