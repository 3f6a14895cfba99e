-- Demand per store x item x local business date, all channels, zero-filled for every day the store
-- was open and the item ranged (a missing day is a zero, not a gap); no rows before a store opened.
-- Open days and planned promotions come from dim_store_day and fct_planned_promotion (one rule each).
-- Incremental: a build recomputes only the store-days whose lines were harmonized since the last build (late
-- rows included) and the days history gained at either end; each such store-day is replaced whole
-- (`lines_through`: the newest line harmonized when the row was built). A change to reference data or code
-- rebuilds it in full (core/ingest/harmonize.py).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['store_id', 'business_date'],
          on_schema_change='fail') }}
with all_accepted as (
    select * from {{ ref('int_sales_lines') }}
    where quarantine_reason is null and not is_duplicate
),
{%- if is_incremental() %}
previous as (
    select min(business_date) as first_day, max(business_date) as last_day,
           coalesce(max(lines_through), '-infinity'::timestamp) as through
    from {{ this }}
),
changed as (
    select distinct l.store_id, l.business_date
    from {{ ref('int_sales_lines') }} l, previous p
    where l.harmonized_at > p.through and l.store_id is not null and l.business_date is not null
    union
    select d.store_id, d.calendar_date
    from {{ ref('dim_store_day') }} d, previous p,
         (select min(business_date) as first_day, max(business_date) as last_day from all_accepted) b
    where d.calendar_date between b.first_day and b.last_day
      and (p.last_day is null or d.calendar_date > p.last_day or d.calendar_date < p.first_day)
),
accepted as (
    select a.* from all_accepted a semi join changed c using (store_id, business_date)
),
{%- else %}
accepted as (
    select * from all_accepted
),
{%- endif %}
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
    select min(business_date) as first_day, max(business_date) as last_day,
           (select max(harmonized_at) from {{ ref('int_sales_lines') }}) as lines_through
    from all_accepted
),
open_days as (
    select d.store_id, d.calendar_date as business_date
    from {{ ref('dim_store_day') }} d
    cross join bounds b
    {%- if is_incremental() %}
    semi join changed c on c.store_id = d.store_id and c.business_date = d.calendar_date
    {%- endif %}
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
    coalesce(so.lines, 0) as lines,
    (select lines_through from bounds) as lines_through
from spine sp
full outer join sold so
    on so.store_id = sp.store_id and so.item_id = sp.item_id and so.business_date = sp.business_date
left join promo pr
    on pr.store_id = coalesce(sp.store_id, so.store_id)
   and pr.item_id = coalesce(sp.item_id, so.item_id)
   and pr.business_date = coalesce(sp.business_date, so.business_date)
order by 1, 2, 3
