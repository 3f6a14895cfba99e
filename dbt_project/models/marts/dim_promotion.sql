-- The promotion calendar, planned in advance: a known-future regressor for forecasts.
select * from {{ ref('stg_promotions') }} order by region, item_id, start_date
