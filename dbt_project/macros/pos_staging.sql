{#- Map one region's POS schema to the canonical one, still as text plus parsed fields.
    `columns` maps canonical name -> the region's column name; `decimal` is the region's decimal mark. -#}
{% macro pos_staging(region, raw_table, columns, timestamp_format, decimal) %}
with raw as (
    select * from {{ source('landing', raw_table) }}
),
files as (
    select file, header, sha256, ingested_at from {{ source('landing', '_ingest_files') }}
)
select
    '{{ region }}' as region,
    'pos' as channel,
    raw._file as source_file,
    raw._line as source_line,
    files.sha256 as source_sha256,
    files.ingested_at as source_ingested_at,
    raw."{{ columns['txn_id'] }}" as record_key,
    raw."{{ columns['store_id'] }}" as store_id,
    raw."{{ columns['sku'] }}" as item_id,
    raw."{{ columns['sold_at'] }}" as sold_at_text,
    try_strptime(raw."{{ columns['sold_at'] }}", '{{ timestamp_format }}') as sold_at_local,
    raw."{{ columns['qty'] }}" as qty_text,
    {{ plain_integer('raw."' ~ columns['qty'] ~ '"') }} as qty,
    {%- if decimal == ',' %}
    try_cast(replace(replace(raw."{{ columns['unit_price'] }}", '.', ''), ',', '.') as decimal(18, 4)) as unit_price,
    {%- else %}
    try_cast(raw."{{ columns['unit_price'] }}" as decimal(18, 4)) as unit_price,
    {%- endif %}
    upper(raw."{{ columns['currency'] }}") as currency,
    nullif(raw."{{ columns['promo_code'] }}", '') as promo_code,
    raw."{{ columns['color'] }}" as color,
    -- a file whose header lacks a required column: every row of it is quarantined, by name
    list_filter(
        {{ "['" ~ [columns['txn_id'], columns['store_id'], columns['sku'], columns['sold_at'], columns['qty'], columns['unit_price'], columns['currency']] | join("', '") ~ "']" }},
        lambda c: not list_contains(string_split(files.header, ','), c)
    ) as missing_columns
from raw
left join files on files.file = raw._file
{% endmacro %}
