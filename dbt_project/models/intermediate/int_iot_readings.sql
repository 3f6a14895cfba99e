-- IoT readings typed, on the store's local business date, with their fate (quarantine or duplicate).
with r as (
    select i.*, s.timezone, s.store_id is not null as store_known,
           it.item_id is not null as item_known
    from {{ ref('stg_iot') }} i
    left join {{ ref('stg_stores') }} s on s.store_id = i.store_id
    left join {{ ref('stg_items') }} it on it.item_id = i.item_id
),
judged as (
    select
        *,
        case when timezone is not null and recorded_at_utc is not null
             then cast(timezone(timezone, recorded_at_utc) as date) end as business_date,
        case
            when recorded_at_utc is null then 'unparseable_timestamp'
            when not store_known then 'unknown_store'
            when metric not in ('temperature_c', 'shelf_units') or metric is null then 'unknown_metric'
            when value is null then 'unparseable_value'
            when metric = 'temperature_c'
                 and (value < {{ var('min_temperature_c') }} or value > {{ var('max_temperature_c') }})
                then 'temperature_out_of_range'
            when metric = 'shelf_units' and not item_known then 'unknown_item'
            when metric = 'shelf_units' and value < 0 then 'negative_shelf_units'
        end as quarantine_reason
    from r
)
select
    source_file, source_line, store_id, device_id, item_id, metric, recorded_at_utc, business_date,
    value, quarantine_reason,
    quarantine_reason is null and row_number() over (
        partition by quarantine_reason is null, device_id, metric, recorded_at_utc, item_id
        order by source_file, source_line
    ) > 1 as is_duplicate
from judged
