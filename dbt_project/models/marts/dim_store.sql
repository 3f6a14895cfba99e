-- One row per store, with the first and last business date it has accepted sales for.
select
    s.*,
    min(l.business_date) as first_sale_date,
    max(l.business_date) as last_sale_date
from {{ ref('stg_stores') }} s
left join {{ ref('int_sales_lines') }} l
    on l.store_id = s.store_id and l.quarantine_reason is null and not l.is_duplicate
group by all
order by s.store_id
