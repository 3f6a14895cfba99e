{#- A count as sent: an optional minus and plain decimal digits, nothing else. `2.5`, `0x10`, `1_000`, `1e2`
    or ` 3` are not silently rounded or reinterpreted (DuckDB's cast would): they are NULL, so the row is
    quarantined with its raw text. -#}
{% macro plain_integer(expr) -%}
    case when regexp_full_match({{ expr }}, '-?[0-9]{1,18}') then cast({{ expr }} as bigint) end
{%- endmacro %}
