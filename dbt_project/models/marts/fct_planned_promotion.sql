-- One row per store x item x day a promotion is planned (history and the calendar ahead): the known-future
-- promotion flag, defined once for the demand mart and the per-store features.
select distinct s.store_id, p.item_id, c.calendar_date
from {{ ref('stg_promotions') }} p
join {{ ref('stg_stores') }} s on s.region = p.region
join {{ ref('dim_calendar') }} c on c.calendar_date between p.start_date and p.end_date
order by 1, 2, 3
