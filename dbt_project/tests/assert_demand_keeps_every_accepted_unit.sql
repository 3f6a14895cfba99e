{{ config(meta={"dagster": {"ref": {"name": "fct_daily_demand"}}}) }}
-- Fails when zero-filling or joins lost or invented units: fct_daily_demand must sum to the accepted lines.
select *
from (select sum(qty) as accepted_units from {{ ref('int_sales_lines') }}
      where quarantine_reason is null and not is_duplicate) a,
     (select sum(units_total) as fact_units from {{ ref('fct_daily_demand') }}) f
where a.accepted_units is distinct from f.fact_units
