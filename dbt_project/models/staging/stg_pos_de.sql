-- German tills: `;` separated, decimal commas, dd.mm.yyyy timestamps, German column names.
{{ pos_staging('DE', 'raw_pos_de', {
    'txn_id': 'bon_id', 'store_id': 'filiale', 'sku': 'artikel', 'sold_at': 'zeitpunkt', 'qty': 'menge',
    'unit_price': 'einzelpreis', 'currency': 'waehrung', 'promo_code': 'aktion', 'color': 'farbe'},
    '%d.%m.%Y %H:%M:%S', ',') }}
