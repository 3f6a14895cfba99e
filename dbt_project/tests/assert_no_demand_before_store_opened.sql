{{ config(meta={"dagster": {"ref": {"name": "fct_daily_demand"}}}) }}
select d.*
from {{ ref('fct_daily_demand') }} d
join {{ ref('dim_store') }} s using (store_id)
where d.business_date < s.opened_on
