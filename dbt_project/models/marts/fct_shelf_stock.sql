-- Per store x item x business date: shelf sensor readings, estimated hours out of stock, and the units on the
-- shelf at the day's last reading (what the store holds at close: the on-hand of inventory cover).
select
    store_id, item_id, business_date,
    count(*) as shelf_readings,
    count(*) filter (where value = 0) as empty_readings,
    round(24.0 * count(*) filter (where value = 0) / count(*), 4) as out_of_stock_hours,
    arg_max(value, recorded_at_utc) as on_hand_units,
    max(recorded_at_utc) as last_reading_at_utc
from {{ ref('int_iot_readings') }}
where quarantine_reason is null and not is_duplicate and metric = 'shelf_units'
group by all
order by 1, 2, 3
