-- Every POS and e-commerce line, typed, on the store's local business date, in USD, with its fate:
-- `quarantine_reason` for the first rule it breaks, otherwise `is_duplicate` for resent copies (the first copy
-- received is the original: ordered by when its file was loaded, then file and line).
-- rows read = accepted + duplicate + quarantined holds per file by construction (see ingest_reconciliation).
-- Incremental, keyed on landing files: a build reads only the lines of files that are new or changed since the
-- last build (their old rows are deleted first) and judges a resent line against the originals already here.
-- The Dagster asset rebuilds it in full when reference data, the dbt code or a loaded file changed
-- (core/ingest/harmonize.py); `dbt build --full-refresh` does the same by hand.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='source_file',
          on_schema_change='fail') }}
{% set max_qty = var('max_line_qty') %}
{% set files = new_landing_files(['pos_us', 'pos_uk', 'pos_de', 'ecommerce']) %}

with pos as (
    {%- for model in ['stg_pos_us', 'stg_pos_uk', 'stg_pos_de'] %}
    select region, channel, source_file, source_line, source_sha256, source_ingested_at, record_key, store_id, item_id,
           sold_at_text as time_text, sold_at_local, null::timestamptz as ordered_at_utc,
           qty_text, qty, unit_price, currency, promo_code,
           case when len(missing_columns) > 0 then 'missing_required_column' end as file_reason,
           true as is_json
    from {{ ref(model) }}
    where {{ in_files('source_file', files) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),
ecom as (
    select null as region, channel, source_file, source_line, source_sha256, source_ingested_at, record_key,
           store_id, item_id, ordered_at_text as time_text, null::timestamp as sold_at_local, ordered_at_utc,
           qty_text, qty, unit_price, currency, promo_code, null as file_reason, is_json
    from {{ ref('stg_ecommerce') }}
    where {{ in_files('source_file', files) }}
),
lines as (
    select * from pos
    union all by name
    select * from ecom
),
typed as (
    select
        l.*,
        s.store_id is not null as store_known,
        s.timezone,
        s.opened_on,
        s.region as store_region,
        i.item_id is not null as item_known,
        case
            when l.channel = 'pos' then l.sold_at_local
            when s.timezone is not null then timezone(s.timezone, l.ordered_at_utc)
        end as local_time
    from lines l
    left join {{ ref('stg_stores') }} s on s.store_id = l.store_id
    left join {{ ref('stg_items') }} i on i.item_id = l.item_id
),
fx as (
    select t.*, r.usd_per_unit
    from typed t
    asof left join {{ ref('stg_fx_rates') }} r
        on r.currency = t.currency and r.rate_date <= cast(t.local_time as date)
),
judged as (
    select
        *,
        cast(local_time as date) as business_date,
        case
            when not is_json then 'invalid_json'
            when file_reason is not null then file_reason
            when record_key is null or store_id is null or item_id is null then 'missing_required_field'
            when channel = 'pos' and sold_at_local is null then 'unparseable_timestamp'
            when channel = 'ecommerce' and ordered_at_utc is null then 'unparseable_timestamp'
            when qty is null then 'unparseable_qty'
            when qty < 0 then 'negative_qty'
            when qty = 0 then 'zero_qty'
            when qty > {{ max_qty }} then 'absurd_qty'
            when unit_price is null or unit_price < 0 then 'invalid_unit_price'
            when not store_known then 'unknown_store'
            when not item_known then 'unknown_item'
            when usd_per_unit is null then 'unknown_currency_or_rate'
            when cast(local_time as date) < opened_on then 'sale_before_store_opened'
        end as quarantine_reason,
        -- a local wall time that happens twice when clocks go back: the date is still certain
        -- (clocks only change between 00:00 and 04:00 local, so only those rows pay for the time zone maths)
        case when channel = 'pos' and timezone is not null and hour(sold_at_local) < 4 then (
            timezone(timezone, timezone(timezone, sold_at_local) - interval 1 hour) = sold_at_local
            or timezone(timezone, timezone(timezone, sold_at_local) + interval 1 hour) = sold_at_local
        ) else false end as dst_ambiguous
    from fx
)
select
    channel,
    coalesce(region, store_region) as region,
    source_file,
    source_line,
    record_key,
    store_id,
    item_id,
    business_date,
    local_time,
    time_text,
    qty,
    unit_price,
    currency,
    -- decimals, not doubles: sums are exact, so a rebuild gives the same bytes (data versions stay stable)
    cast(qty * unit_price as decimal(18, 4)) as revenue_local,
    cast(qty * unit_price * usd_per_unit as decimal(18, 4)) as revenue_usd,
    promo_code,
    dst_ambiguous,
    quarantine_reason,
    quarantine_reason is null and (
        row_number() over (
            partition by channel, quarantine_reason is null, store_id, record_key
            order by source_ingested_at, source_file, source_line
        ) > 1
        {%- if files is not none %}
        -- a copy of a line an earlier build already accepted (files being replaced are not originals any more)
        or exists (
            select 1 from {{ this }} t
            where t.channel = judged.channel and t.store_id = judged.store_id and t.record_key = judged.record_key
              and t.quarantine_reason is null and not t.is_duplicate and not ({{ in_files('t.source_file', files) }})
        )
        {%- endif %}
    ) as is_duplicate,
    source_sha256,
    {{ build_stamp() }} as harmonized_at
from judged
