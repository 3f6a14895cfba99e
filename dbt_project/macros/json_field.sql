{#- A field of a JSON line, NULL when the line is not a JSON object; `cast` types it (NULL when it does not fit),
    so staging keeps the raw text beside the typed value for quarantine to judge. -#}
{% macro json_field(key, cast=none) -%}
    {%- if cast -%}
    case when is_json then try_cast(_raw ->> '{{ key }}' as {{ cast }}) end
    {%- else -%}
    case when is_json then _raw ->> '{{ key }}' end
    {%- endif -%}
{%- endmacro %}
