select * from {{ ref('stg_items') }} order by item_id
