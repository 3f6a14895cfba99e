-- Per landing file: rows_read = rows_accepted + rows_duplicate + rows_quarantined, or it says not.
-- A file the loader refused (unreadable, a link, a special file...) has a row with its reason and is never
-- reconciled: a changed file refused keeps the rows of its last loaded version, which are counted here.
with fates as (
    {%- for model in ['int_sales_lines', 'int_iot_readings', 'int_weather_forecasts', 'int_edge_telemetry'] %}
    select source_file,
           count(*) filter (where quarantine_reason is null and not is_duplicate) as accepted,
           count(*) filter (where is_duplicate) as duplicate,
           count(*) filter (where quarantine_reason is not null) as quarantined
    from {{ ref(model) }} group by 1
    {{ "union all" if not loop.last }}
    {%- endfor %}
),
rejected as (
    select source, file, sha256, reason from {{ source('landing', '_rejected_files') }}
),
loaded as (
    select f.source, f.file, f.sha256, f.rows_read, f.ingested_at from {{ source('landing', '_ingest_files') }} f
    union all
    select r.source, r.file, null, 0, null from rejected r
    where r.file not in (select file from {{ source('landing', '_ingest_files') }})
),
malformed as (
    select _file as source_file, count(*) as n from {{ source('landing', 'raw_malformed') }} group by 1
)
select
    f.source,
    f.file as source_file,
    f.sha256,
    f.rows_read,
    case when f.source = 'reference' then f.rows_read else coalesce(x.accepted, 0) end as rows_accepted,
    coalesce(x.duplicate, 0) as rows_duplicate,
    coalesce(x.quarantined, 0) + coalesce(m.n, 0) as rows_quarantined,
    case when f.rows_read = 0 then 0.0
         else (coalesce(x.quarantined, 0) + coalesce(m.n, 0)) / f.rows_read end as quarantine_rate,
    rj.reason is null and f.rows_read = (case when f.source = 'reference' then f.rows_read else coalesce(x.accepted, 0) end)
        + coalesce(x.duplicate, 0) + coalesce(x.quarantined, 0) + coalesce(m.n, 0) as reconciled,
    rj.reason as rejected_reason,
    rj.sha256 as rejected_sha256,
    f.ingested_at
from loaded f
left join rejected rj on rj.file = f.file
left join fates x on x.source_file = f.file
left join malformed m on m.source_file = f.file
order by f.source, f.file
