-- Telemetry records with their fate: a quarantine reason, a duplicate (the same record shipped twice), or kept.
with judged as (
    select
        *,
        case
            when not is_json then 'not_json_object'
            when schema_version is null or schema_version <> 1 then 'unsupported_schema'
            when record_id is null or store_id is null or outcome is null or started_at_text is null
                 or latency_text is null then 'missing_field'
            when not regexp_full_match(store_id, '[A-Za-z0-9][A-Za-z0-9_-]{0,31}') then 'invalid_store_id'
            -- a time without its UTC offset would be read in the session's time zone: refused, not guessed
            when started_at_utc is null
                 or not regexp_matches(started_at_text, '(Z|[+-][0-9]{2}:?[0-9]{2})$') then 'unparseable_timestamp'
            when latency_ms is null or latency_ms < 0 or not isfinite(latency_ms) then 'invalid_latency'
            when outcome not in ('ok', 'refused', 'error') then 'unknown_outcome'
            when outcome = 'ok' and bundle_version is null then 'missing_field'
        end as quarantine_reason
    from {{ ref('stg_edge_telemetry') }}
)
select
    *,
    quarantine_reason is null and row_number() over (
        partition by quarantine_reason is null, record_id order by source_file, source_line
    ) > 1 as is_duplicate
from judged
