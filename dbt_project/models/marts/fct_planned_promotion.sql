-- One row per store x item x day a promotion is planned (history and the calendar ahead): the known-future
-- promotion flag and its depth (the deepest discount planned that day, 0 when the plan names none), defined
-- once for the demand mart and the per-store features.
select s.store_id, p.item_id, c.calendar_date,
       greatest(coalesce(max(p.discount_pct), 0), 0) as discount_pct
from {{ ref('stg_promotions') }} p
join {{ ref('stg_stores') }} s on s.region = p.region
join {{ ref('dim_calendar') }} c on c.calendar_date between p.start_date and p.end_date
group by 1, 2, 3
order by 1, 2, 3
