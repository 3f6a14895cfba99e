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
    case when is_json then _raw ->> 'record_id' end as record_id,
    case when is_json then try_cast(_raw ->> 'schema' as integer) end as schema_version,
    case when is_json then _raw ->> 'store_id' end as store_id,
    case when is_json then _raw ->> 'bundle_version' end as bundle_version,
    case when is_json then _raw ->> 'manifest_sha256' end as manifest_sha256,
    case when is_json then try_cast(_raw ->> 'verified' as boolean) end as verified,
    case when is_json then _raw ->> 'started_at' end as started_at_text,
    case when is_json then try_cast(_raw ->> 'started_at' as timestamptz) end as started_at_utc,
    case when is_json then _raw ->> 'latency_ms' end as latency_text,
    case when is_json then try_cast(_raw ->> 'latency_ms' as double) end as latency_ms,
    case when is_json then try_cast(_raw ->> 'predict_ms' as double) end as predict_ms,
    case when is_json then _raw ->> 'outcome' end as outcome,
    case when is_json then _raw ->> 'error_class' end as error_class,
    case when is_json then _raw ->> 'error' end as error_message,
    case when is_json then try_cast(_raw ->> 'items' as integer) end as items,
    case when is_json then _raw ->> 'host' end as host,
    case when is_json then _raw ->> 'runner' end as runner
from raw
