-- Demand per store x item x local business date, all channels, zero-filled for every day the store
-- was open and the item ranged (a missing day is a zero, not a gap); no rows before a store opened.
-- Open days and planned promotions come from dim_store_day and fct_planned_promotion (one rule each).
with accepted as (
    select * from {{ ref('int_sales_lines') }}
    where quarantine_reason is null and not is_duplicate
),
sold as (
    select
        store_id,
        item_id,
        business_date,
        sum(qty) filter (where channel = 'pos') as units_pos,
        sum(qty) filter (where channel = 'ecommerce') as units_ecommerce,
        sum(qty) as units_total,
        sum(revenue_usd) filter (where channel = 'pos') as revenue_pos_usd,
        sum(revenue_usd) filter (where channel = 'ecommerce') as revenue_ecommerce_usd,
        sum(revenue_usd) as revenue_total_usd,
        sum(qty) filter (where promo_code is not null) as units_on_promo,
        count(*) as lines
    from accepted
    group by all
),
bounds as (
    select min(business_date) as first_day, max(business_date) as last_day from accepted
),
open_days as (
    select d.store_id, d.calendar_date as business_date
    from {{ ref('dim_store_day') }} d
    cross join bounds b
    where d.is_open_day and d.calendar_date between b.first_day and b.last_day
),
spine as (
    select o.store_id, i.item_id, o.business_date, true as is_open_day
    from open_days o
    join {{ ref('stg_items') }} i on o.business_date >= i.launched_on
),
promo as (
    select store_id, item_id, calendar_date as business_date from {{ ref('fct_planned_promotion') }}
)
select
    coalesce(sp.store_id, so.store_id) as store_id,
    coalesce(sp.item_id, so.item_id) as item_id,
    coalesce(sp.business_date, so.business_date) as business_date,
    coalesce(so.units_pos, 0) as units_pos,
    coalesce(so.units_ecommerce, 0) as units_ecommerce,
    coalesce(so.units_total, 0) as units_total,
    coalesce(so.revenue_pos_usd, 0) as revenue_pos_usd,
    coalesce(so.revenue_ecommerce_usd, 0) as revenue_ecommerce_usd,
    coalesce(so.revenue_total_usd, 0) as revenue_total_usd,
    coalesce(so.units_on_promo, 0) as units_on_promo,
    pr.store_id is not null as promo_planned,
    coalesce(sp.is_open_day, false) as is_open_day,
    coalesce(so.lines, 0) as lines
from spine sp
full outer join sold so
    on so.store_id = sp.store_id and so.item_id = sp.item_id and so.business_date = sp.business_date
left join promo pr
    on pr.store_id = coalesce(sp.store_id, so.store_id)
   and pr.item_id = coalesce(sp.item_id, so.item_id)
   and pr.business_date = coalesce(sp.business_date, so.business_date)
order by 1, 2, 3
