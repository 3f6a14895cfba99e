"""Regional conventions of the landing zone: one place that says how each region spells its files.

The generator writes files in these conventions and the dbt staging models read them back;
the README's landing-zone section documents the same table for retailers' real files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PosConvention:
    """How one region's point-of-sale CSV is spelled."""

    region: str
    currency: str
    separator: str
    decimal: str
    timestamp_format: str  # strftime format of the store-local sale time
    columns: tuple[str, ...]  # header, in canonical order:
    # txn_id, store_id, sku, sold_at, qty, unit_price, currency, promo_code, color


CANONICAL_POS_COLUMNS = (
    "txn_id",
    "store_id",
    "sku",
    "sold_at",
    "qty",
    "unit_price",
    "currency",
    "promo_code",
    "color",
)

POS_CONVENTIONS: dict[str, PosConvention] = {
    "US": PosConvention(
        region="US",
        currency="USD",
        separator=",",
        decimal=".",
        timestamp_format="%Y-%m-%d %H:%M:%S",
        columns=CANONICAL_POS_COLUMNS,
    ),
    "UK": PosConvention(
        region="UK",
        currency="GBP",
        separator=",",
        decimal=".",
        timestamp_format="%d/%m/%Y %H:%M:%S",
        columns=(
            "txn_id",
            "store_id",
            "sku",
            "sold_at",
            "quantity",
            "unit_price",
            "currency",
            "promo_code",
            "colour",
        ),
    ),
    "DE": PosConvention(
        region="DE",
        currency="EUR",
        separator=";",
        decimal=",",
        timestamp_format="%d.%m.%Y %H:%M:%S",
        columns=(
            "bon_id",
            "filiale",
            "artikel",
            "zeitpunkt",
            "menge",
            "einzelpreis",
            "waehrung",
            "aktion",
            "farbe",
        ),
    ),
}

# Store time zones and climate per region, cycled over the region's stores.
REGION_STORE_SITES: dict[str, tuple[tuple[str, str], ...]] = {
    "US": (
        ("America/New_York", "humid_continental"),
        ("America/Chicago", "humid_continental"),
        ("America/Los_Angeles", "mediterranean"),
    ),
    "UK": (("Europe/London", "oceanic"),),
    "DE": (("Europe/Berlin", "continental"),),
}

# `holidays` package country code (and subdivision) per region.
REGION_HOLIDAY_CALENDAR: dict[str, tuple[str, str | None]] = {
    "US": ("US", None),
    "UK": ("GB", "ENG"),
    "DE": ("DE", None),
}
