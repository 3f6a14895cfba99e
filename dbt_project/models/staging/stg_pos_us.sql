-- US tills: comma separated, ISO local timestamps, `qty` and `color`.
{{ pos_staging('US', 'raw_pos_us', {
    'txn_id': 'txn_id', 'store_id': 'store_id', 'sku': 'sku', 'sold_at': 'sold_at', 'qty': 'qty',
    'unit_price': 'unit_price', 'currency': 'currency', 'promo_code': 'promo_code', 'color': 'color'},
    '%Y-%m-%d %H:%M:%S', '.') }}
