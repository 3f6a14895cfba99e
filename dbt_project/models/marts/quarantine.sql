-- Every rejected row: its source file and line, the rule it broke, and its raw values as they arrived.
{% set pos_tables = ['raw_pos_us', 'raw_pos_uk', 'raw_pos_de'] %}
with raw_rows as (
    {%- for t in pos_tables %}
    select _file, _line, to_json(r) as raw_values
    from (select * exclude (_file, _line), _file, _line from {{ source('landing', t) }}) r
    union all
    {%- endfor %}
    select _file, _line, to_json(_raw) from {{ source('landing', 'raw_ecommerce') }}
    union all
    select _file, _line, to_json(r)
    from (select * exclude (_file, _line), _file, _line from {{ source('landing', 'raw_iot') }}) r
),
rejected as (
    select source_file, source_line, record_key, store_id, item_id, quarantine_reason
    from {{ ref('int_sales_lines') }} where quarantine_reason is not null
    union all
    select source_file, source_line, device_id || '@' || coalesce(cast(recorded_at_utc as varchar), '?'),
           store_id, item_id, quarantine_reason
    from {{ ref('int_iot_readings') }} where quarantine_reason is not null
)
select
    f.source,
    q.source_file,
    q.source_line,
    q.record_key,
    q.store_id,
    q.item_id,
    q.quarantine_reason as reason,
    cast(r.raw_values as varchar) as raw_values
from rejected q
join {{ source('landing', '_ingest_files') }} f on f.file = q.source_file
left join raw_rows r on r._file = q.source_file and r._line = q.source_line
union all
select
    m.source, m._file, m._line, null, null, null, 'malformed_csv_row', to_json(m._raw)::varchar
from {{ source('landing', 'raw_malformed') }} m
order by 1, 2, 3
