-- Daily store conditions from IoT: temperature and shelf availability, on the local business date.
-- Hours out of stock are estimated from the share of shelf readings that saw zero units.
with ok as (
    select * from {{ ref('int_iot_readings') }} where quarantine_reason is null and not is_duplicate
),
temperature as (
    select store_id, business_date,
           -- exact decimal sums: parallel float sums differ in the last bit from run to run
           round(avg(cast(value as decimal(9, 2))), 2) as temperature_mean_c,
           min(value) as temperature_min_c, max(value) as temperature_max_c,
           count(*) as temperature_readings
    from ok where metric = 'temperature_c'
    group by all
),
shelf as (
    select store_id, item_id, business_date,
           count(*) as shelf_readings,
           count(*) filter (where value = 0) as empty_readings
    from ok where metric = 'shelf_units'
    group by all
),
shelf_store as (
    select store_id, business_date,
           round(sum(cast(24.0 * empty_readings / shelf_readings as decimal(12, 4))), 4) as out_of_stock_item_hours,
           count(*) filter (where empty_readings > 0) as items_out_of_stock,
           count(*) as items_monitored
    from shelf group by all
)
select
    coalesce(t.store_id, s.store_id) as store_id,
    coalesce(t.business_date, s.business_date) as business_date,
    t.temperature_mean_c, t.temperature_min_c, t.temperature_max_c,
    coalesce(t.temperature_readings, 0) as temperature_readings,
    coalesce(s.out_of_stock_item_hours, 0) as out_of_stock_item_hours,
    coalesce(s.items_out_of_stock, 0) as items_out_of_stock,
    coalesce(s.items_monitored, 0) as items_monitored
from temperature t
full outer join shelf_store s on s.store_id = t.store_id and s.business_date = t.business_date
order by 1, 2
