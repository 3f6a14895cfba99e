{#- Incremental harmonization keyed on landing files (docs/architecture.md, "Incremental harmonization").

    `new_landing_files(sources, this)`: the landing files of those `_ingest_files` sources whose bytes (SHA-256)
    are not yet in `this` (a model with `source_file` and `source_sha256`): new files and changed ones. None
    when the model is built in full (first build, `--full-refresh`), meaning "every file".
    `in_files(column, files)`: a SQL predicate keeping those files' rows; the names come from the landing
    zone, so each is quoted as an SQL string literal (a quote doubled), never pasted as SQL. -#}
{% macro new_landing_files(sources) -%}
    {%- if not (is_incremental() and execute) -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set query -%}
        select f.file from {{ source('landing', '_ingest_files') }} f
        where f.source in ({% for s in sources %}'{{ s }}'{{ ", " if not loop.last }}{% endfor %})
          and not exists (
              select 1 from (select distinct source_file, source_sha256 from {{ this }}) t
              where t.source_file = f.file and t.source_sha256 = f.sha256)
        order by 1
    {%- endset -%}
    {{- return(run_query(query).columns[0].values() | list) -}}
{%- endmacro %}

{% macro in_files(column, files) -%}
    {%- if files is none -%}
        true
    {%- elif files | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({% for f in files %}'{{ f | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- The time this dbt invocation started, as a timestamp literal: the rows a build adds carry it, so a later
    model (and the next build, after a crash in between) can find them. -#}
{% macro build_stamp() -%}
    '{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}'::timestamp
{%- endmacro %}
