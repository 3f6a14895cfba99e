-- Per store x item x business date: shelf sensor readings and estimated hours out of stock.
select
    store_id, item_id, business_date,
    count(*) as shelf_readings,
    count(*) filter (where value = 0) as empty_readings,
    round(24.0 * count(*) filter (where value = 0) / count(*), 4) as out_of_stock_hours
from {{ ref('int_iot_readings') }}
where quarantine_reason is null and not is_duplicate and metric = 'shelf_units'
group by all
order by 1, 2, 3
