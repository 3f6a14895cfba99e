{#- Retail 4-5-4 (NRF) fiscal calendar.
    Fiscal year Y starts on the Sunday nearest 1 February of Y (NRF fiscal 2024 began 2024-02-04)
    and ends on the Saturday nearest 31 January of Y+1; a 53rd week joins the last period. -#}

{% macro fiscal_year_start(year_expr) -%}
    (make_date({{ year_expr }}, 2, 1)
      - cast(isodow(make_date({{ year_expr }}, 2, 1)) % 7 as integer)
      + case when isodow(make_date({{ year_expr }}, 2, 1)) % 7 > 3 then 7 else 0 end)
{%- endmacro %}

{% macro fiscal_year(date_expr) -%}
    (case when {{ date_expr }} >= {{ fiscal_year_start('year(' ~ date_expr ~ ')') }}
          then year({{ date_expr }}) else year({{ date_expr }}) - 1 end)
{%- endmacro %}

{#- Period (1-12) of a fiscal week (1-53) in the 4-5-4 pattern. -#}
{% macro fiscal_period(week_expr) -%}
    (case
        when {{ week_expr }} <= 4 then 1 when {{ week_expr }} <= 9 then 2 when {{ week_expr }} <= 13 then 3
        when {{ week_expr }} <= 17 then 4 when {{ week_expr }} <= 22 then 5 when {{ week_expr }} <= 26 then 6
        when {{ week_expr }} <= 30 then 7 when {{ week_expr }} <= 35 then 8 when {{ week_expr }} <= 39 then 9
        when {{ week_expr }} <= 43 then 10 when {{ week_expr }} <= 48 then 11 else 12 end)
{%- endmacro %}
