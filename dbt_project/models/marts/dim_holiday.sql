-- Regional public holidays and retail events; `store_closed` days are not open days.
select * from {{ ref('stg_holidays') }} order by holiday_date, region
