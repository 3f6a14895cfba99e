-- Every rejected row: its source file and line, the rule it broke, and its raw values as they arrived.
{% set pos_tables = ['raw_pos_us', 'raw_pos_uk', 'raw_pos_de'] %}
with rejected as (
    select source_file, source_line, record_key, store_id, item_id, quarantine_reason
    from {{ ref('int_sales_lines') }} where quarantine_reason is not null
    union all
    select source_file, source_line, device_id || '@' || coalesce(cast(recorded_at_utc as varchar), '?'),
           store_id, item_id, quarantine_reason
    from {{ ref('int_iot_readings') }} where quarantine_reason is not null
    union all
    select source_file, source_line, record_id, store_id, null, quarantine_reason
    from {{ ref('int_edge_telemetry') }} where quarantine_reason is not null
    union all
    select source_file, source_line,
           coalesce(store_id, region, '?') || '@' || coalesce(cast(forecast_date as varchar), '?') || '@'
               || coalesce(cast(issued_at as varchar), '?'),
           store_id, null, quarantine_reason
    from {{ ref('int_weather_forecasts') }} where quarantine_reason is not null
),
-- raw values are rendered only for the rejected rows (a join per raw table, then to_json)
raw_values as (
    {%- for t in pos_tables + ['raw_iot', 'raw_weather'] %}
    {%- set cols = adapter.get_columns_in_relation(source('landing', t)) if execute else [] %}
    select q.source_file, q.source_line,
           json_object(
               {%- for c in cols if not c.name.startswith('_') %}
               '{{ c.name }}', r."{{ c.name }}"{{ "," if not loop.last }}
               {%- endfor %}
           )::varchar as raw_values
    from rejected q
    join {{ source('landing', t) }} r on r._file = q.source_file and r._line = q.source_line
    union all
    {%- endfor %}
    {%- for t in ['raw_ecommerce', 'raw_edge_telemetry'] %}
    select q.source_file, q.source_line, r._raw
    from rejected q
    join {{ source('landing', t) }} r on r._file = q.source_file and r._line = q.source_line
    {{ "union all" if not loop.last }}
    {%- endfor %}
)
select
    f.source,
    q.source_file,
    q.source_line,
    q.record_key,
    q.store_id,
    q.item_id,
    q.quarantine_reason as reason,
    v.raw_values
from rejected q
join {{ source('landing', '_ingest_files') }} f on f.file = q.source_file
left join raw_values v on v.source_file = q.source_file and v.source_line = q.source_line
union all
select
    m.source, m._file, m._line, null, null, null, 'malformed_csv_row', to_json(m._raw)::varchar
from {{ source('landing', 'raw_malformed') }} m
order by 1, 2, 3
