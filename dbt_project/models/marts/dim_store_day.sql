-- One row per store x calendar day, over history and the calendar kept ahead for forecast horizons: is the
-- store open that day, and which holidays fall on it there. The one definition of an open day: the demand
-- mart, the per-store features and the completeness check all read it.
with store_holidays as (
    select
        s.store_id,
        h.holiday_date,
        bool_or(h.store_closed) as store_closed,
        string_agg(h.holiday_name, ' / ' order by h.holiday_name) as holiday_name
    from {{ ref('stg_stores') }} s
    join {{ ref('stg_holidays') }} h on h.region = s.region
    group by all
)
select
    s.store_id,
    c.calendar_date,
    (c.calendar_date >= s.opened_on
        and not list_contains(string_split(s.closed_weekdays, ','), c.day_name)
        and not coalesce(h.store_closed, false)) as is_open_day,
    h.holiday_date is not null as is_holiday,
    h.holiday_name
from {{ ref('stg_stores') }} s
cross join {{ ref('dim_calendar') }} c
left join store_holidays h on h.store_id = s.store_id and h.holiday_date = c.calendar_date
order by s.store_id, c.calendar_date
