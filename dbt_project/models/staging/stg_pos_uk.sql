-- UK tills: day-first local timestamps, `quantity` and `colour`.
{{ pos_staging('UK', 'raw_pos_uk', {
    'txn_id': 'txn_id', 'store_id': 'store_id', 'sku': 'sku', 'sold_at': 'sold_at', 'qty': 'quantity',
    'unit_price': 'unit_price', 'currency': 'currency', 'promo_code': 'promo_code', 'color': 'colour'},
    '%d/%m/%Y %H:%M:%S', '.') }}
