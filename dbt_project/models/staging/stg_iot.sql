-- Store IoT readings: temperature per store, shelf units per item; UTC timestamps.
select
    _file as source_file,
    _line as source_line,
    store_id,
    device_id,
    nullif(sku, '') as item_id,
    metric,
    recorded_at_utc as recorded_at_text,
    try_cast(recorded_at_utc as timestamptz) as recorded_at_utc,
    value as value_text,
    try_cast(value as double) as value
from {{ source('landing', 'raw_iot') }}
