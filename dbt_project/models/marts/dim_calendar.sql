-- One row per day: ISO and retail 4-5-4 fiscal fields, and the regions with a holiday that day.
{% set regions_query %}select distinct region from {{ ref('stg_holidays') }} order by 1{% endset %}
{% if execute %}
    {% set regions = run_query(regions_query).columns[0].values() %}
{% else %}
    {% set regions = [] %}
{% endif %}

with bounds as (
    select
        least(
            (select min(business_date) from {{ ref('int_sales_lines') }} where quarantine_reason is null),
            (select min(rate_date) from {{ ref('stg_fx_rates') }})
        ) as first_day,
        (select max(business_date) from {{ ref('int_sales_lines') }} where quarantine_reason is null)
            + {{ var('calendar_future_days') }} as last_day
),
days as (
    select cast(d as date) as calendar_date
    from bounds, range(bounds.first_day, bounds.last_day + 1, interval 1 day) t(d)
),
fiscal as (
    select
        calendar_date,
        {{ fiscal_year('calendar_date') }} as fiscal_year
    from days
),
holidays as (
    select holiday_date, list(distinct region order by region) as holiday_regions
    from {{ ref('stg_holidays') }}
    group by 1
)
select
    f.calendar_date,
    isodow(f.calendar_date) as iso_day_of_week,
    strftime(f.calendar_date, '%a') as day_name,
    isodow(f.calendar_date) in (6, 7) as is_weekend,
    weekofyear(f.calendar_date) as iso_week,
    f.fiscal_year,
    {{ fiscal_year_start('f.fiscal_year') }} as fiscal_year_start,
    cast(({{ fiscal_year_start('f.fiscal_year + 1') }} - {{ fiscal_year_start('f.fiscal_year') }}) / 7 as integer)
        as fiscal_weeks_in_year,
    cast((f.calendar_date - {{ fiscal_year_start('f.fiscal_year') }}) // 7 + 1 as integer) as fiscal_week,
    {{ fiscal_period('cast((f.calendar_date - ' ~ fiscal_year_start('f.fiscal_year') ~ ') // 7 + 1 as integer)') }}
        as fiscal_period,
    cast(({{ fiscal_period('cast((f.calendar_date - ' ~ fiscal_year_start('f.fiscal_year') ~ ') // 7 + 1 as integer)') }} - 1) // 3 + 1 as integer)
        as fiscal_quarter,
    coalesce(h.holiday_regions, []) as holiday_regions
    {%- for r in regions %},
    list_contains(coalesce(h.holiday_regions, []), '{{ r }}') as is_holiday_{{ r | lower }}
    {%- endfor %}
from fiscal f
left join holidays h on h.holiday_date = f.calendar_date
order by f.calendar_date
