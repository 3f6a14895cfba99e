-- Edge devices' telemetry (JSONL, one record per forecast; schema in retail_assets/edge/telemetry.py).
-- Parsed here, judged in int_edge_telemetry.
with raw as (
    select _raw, _file, _line,
           case when json_valid(_raw) then json_type(_raw) = 'OBJECT' else false end as is_json
    from {{ source('landing', 'raw_edge_telemetry') }}
)
select
    _file as source_file,
    _line as source_line,
    is_json,
    {{ json_field('record_id') }} as record_id,
    {{ json_field('schema', 'integer') }} as schema_version,
    {{ json_field('store_id') }} as store_id,
    {{ json_field('bundle_version') }} as bundle_version,
    {{ json_field('manifest_sha256') }} as manifest_sha256,
    {{ json_field('verified', 'boolean') }} as verified,
    {{ json_field('started_at') }} as started_at_text,
    {{ json_field('started_at', 'timestamptz') }} as started_at_utc,
    {{ json_field('latency_ms') }} as latency_text,
    {{ json_field('latency_ms', 'double') }} as latency_ms,
    {{ json_field('predict_ms', 'double') }} as predict_ms,
    {{ json_field('outcome') }} as outcome,
    {{ json_field('error_class') }} as error_class,
    {{ json_field('error') }} as error_message,
    {{ json_field('items', 'integer') }} as items,
    {{ json_field('host') }} as host,
    {{ json_field('runner') }} as runner
from raw
