-- One row per forecast a store device made (kept telemetry records, duplicates removed): what is actually
-- serving, how fast, and how often it fails. edge_fleet_status reads this.
select
    record_id, store_id, bundle_version, manifest_sha256, coalesce(verified, outcome = 'ok') as verified,
    started_at_utc, latency_ms, predict_ms, outcome, error_class, error_message, items, host, runner,
    source_file, source_line
from {{ ref('int_edge_telemetry') }}
where quarantine_reason is null and not is_duplicate
