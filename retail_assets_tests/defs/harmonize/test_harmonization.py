"""Harmonization in dbt on DuckDB, checked against what the generator injected."""

from __future__ import annotations

import csv
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest


def test_quarantine_counts_match_injected_defects(ingested, warehouse):
    _root, truth, _ = ingested
    got = {(s, r): n for s, r, n in warehouse.execute(
        "select case when source like 'pos_%' then 'pos' else source end, reason, count(*)"
        " from quarantine group by all").fetchall()}
    expected = {
        (src, key.split(":", 1)[1]): n
        for src, counts in truth["counts"].items()
        for key, n in counts.items() if key.startswith("quarantine:") and n
    }
    assert got == expected


def test_every_quarantined_row_keeps_file_line_and_raw_values(warehouse):
    missing = warehouse.execute(
        "select count(*) from quarantine where source_file is null or source_line is null or raw_values is null"
    ).fetchone()[0]
    assert missing == 0
    file, line, raw = warehouse.execute(
        "select source_file, source_line, raw_values from quarantine where reason = 'negative_qty' limit 1"
    ).fetchone()
    assert json.loads(raw)  # the row as it arrived
    assert file.startswith("pos/region=")
    assert line >= 2


def test_duplicates_match_resent_rows(ingested, warehouse):
    _root, truth, _ = ingested
    dup = dict(warehouse.execute(
        "select case when source like 'pos_%' then 'pos' else source end, sum(rows_duplicate)"
        " from ingest_reconciliation group by 1").fetchall())
    assert dup["pos"] == truth["counts"]["pos"]["duplicate"]
    assert dup["ecommerce"] == truth["counts"]["ecommerce"]["duplicate"]
    assert dup["weather"] == truth["counts"]["weather"]["duplicate"] > 0


def test_rows_reconcile_per_file_and_in_total(ingested, warehouse):
    _root, truth, _ = ingested
    bad = warehouse.execute("select count(*) from ingest_reconciliation where not reconciled").fetchone()[0]
    assert bad == 0
    read = dict(warehouse.execute(
        "select case when source like 'pos_%' then 'pos' else source end, sum(rows_read)"
        " from ingest_reconciliation group by 1").fetchall())
    for src in ("pos", "ecommerce", "iot", "weather"):
        assert read[src] == truth["counts"][src]["rows_written"], src


def test_accepted_units_equal_true_demand(ingested, warehouse):
    _root, truth, _ = ingested
    c = truth["counts"]
    expected_pos = c["demand"]["pos_units"] - c["pos"].get("units_lost_to_quarantine", 0)
    expected_ecom = c["demand"]["ecommerce_units"] - c["ecommerce"].get("units_lost_to_quarantine", 0)
    pos, ecom = warehouse.execute("select sum(units_pos), sum(units_ecommerce) from fct_daily_demand").fetchone()
    assert (pos, ecom) == (expected_pos, expected_ecom)


def test_dst_ambiguous_times_are_flagged_and_kept_on_their_date(ingested, warehouse):
    _root, truth, _ = ingested
    rows = warehouse.execute(
        "select business_date, local_time, quarantine_reason, is_duplicate from int_sales_lines where dst_ambiguous"
    ).fetchall()
    assert len([r for r in rows if not r[3]]) == truth["counts"]["pos"]["dst_ambiguous"]
    for business_date, local_time, reason, _dup in rows:
        assert reason is None
        assert local_time.hour == 1 and business_date == local_time.date()
        assert business_date in (dt.date(2023, 10, 29), dt.date(2023, 11, 5))


def test_late_rows_land_on_their_own_business_date(ingested, warehouse):
    _root, truth, _ = ingested
    late = warehouse.execute(
        """select business_date, strptime(regexp_extract(source_file, '(\\d{8})', 1), '%Y%m%d')::date
           from int_sales_lines
           where channel = 'pos' and quarantine_reason is null and not is_duplicate
             and business_date <> strptime(regexp_extract(source_file, '(\\d{8})', 1), '%Y%m%d')::date"""
    ).fetchall()
    assert len(late) == truth["counts"]["pos"]["late_rows"]
    assert all(1 <= (file_day - day).days <= 2 for day, file_day in late)


def test_ecommerce_orders_land_on_the_store_local_business_date(ingested, warehouse):
    root, _truth, _ = ingested
    tz = dict(warehouse.execute("select store_id, timezone from dim_store").fetchall())
    rows = warehouse.execute(
        "select store_id, time_text, business_date from int_sales_lines"
        " where channel = 'ecommerce' and quarantine_reason is null"
    ).fetchall()
    crossing = 0
    for store, text, business_date in rows:
        utc = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        local = utc.astimezone(ZoneInfo(tz[store]))
        assert business_date == local.date(), (store, text)
        crossing += utc.date() != local.date()
    # late-evening orders in New York are next-day UTC; after-midnight ones in London/Berlin are previous-day UTC
    assert crossing > 10


def test_currency_conversion_uses_that_days_rate(ingested, warehouse):
    root, _truth, _ = ingested
    with open(root / "landing" / "reference" / "fx_rates.csv") as fh:
        rates = {(r["date"], r["currency"]): float(r["usd_per_unit"]) for r in csv.DictReader(fh)}
    rows = warehouse.execute(
        "select business_date, currency, qty, unit_price, revenue_usd from int_sales_lines"
        " where quarantine_reason is null and currency in ('EUR', 'GBP') using sample 200 rows"
    ).fetchall()
    assert {r[1] for r in rows} == {"EUR", "GBP"}
    for day, cur, qty, price, usd in rows:
        assert float(usd) == pytest.approx(qty * float(price) * rates[(day.isoformat(), cur)], abs=1e-4)


@pytest.mark.parametrize(
    "day, fiscal_year, week, period, quarter",
    [
        ("2024-02-03", 2023, 53, 12, 4),  # last day of the 53-week fiscal 2023
        ("2024-02-04", 2024, 1, 1, 1),  # NRF fiscal 2024 began 2024-02-04
        ("2024-03-02", 2024, 4, 1, 1),
        ("2024-03-03", 2024, 5, 2, 1),  # the 5-week period
        ("2024-05-05", 2024, 14, 4, 2),
        ("2023-12-25", 2023, 48, 11, 4),
    ],
)
def test_retail_454_calendar_on_known_dates(warehouse, day, fiscal_year, week, period, quarter):
    row = warehouse.execute(
        "select fiscal_year, fiscal_week, fiscal_period, fiscal_quarter from dim_calendar where calendar_date = ?",
        [dt.date.fromisoformat(day)],
    ).fetchone()
    assert row == (fiscal_year, week, period, quarter)


def test_zero_filled_on_open_days_and_nothing_before_opening(warehouse):
    # every item (all ranged in the small zone) has a row on every day its store has any row: no gaps
    uneven = warehouse.execute(
        """select store_id from fct_daily_demand group by store_id
           having count(*) <> count(distinct business_date) * count(distinct item_id)"""
    ).fetchall()
    assert uneven == []
    before = warehouse.execute(
        "select count(*) from fct_daily_demand f join dim_store s using (store_id) where f.business_date < s.opened_on"
    ).fetchone()[0]
    assert before == 0
    # German stores are closed on Sundays: no zero rows invented for them
    de_sundays = warehouse.execute(
        "select count(*) from fct_daily_demand f join dim_store s using (store_id)"
        " where s.region = 'DE' and dayofweek(f.business_date) = 0"
    ).fetchone()[0]
    assert de_sundays == 0
    zeros = warehouse.execute("select count(*) from fct_daily_demand where units_total = 0 and is_open_day").fetchone()[0]
    assert zeros > 0


def test_holiday_flags_and_promotions_reach_the_marts(warehouse):
    assert warehouse.execute(
        "select is_holiday_us from dim_calendar where calendar_date = date '2023-11-23'"  # Thanksgiving
    ).fetchone() == (True,)
    assert warehouse.execute("select count(*) from fct_daily_demand where promo_planned").fetchone()[0] > 0


def test_weather_forecasts_per_store_day_and_issue_with_their_lead(ingested, warehouse):
    root, truth, _ = ingested
    stores = warehouse.execute("select count(*) from dim_store").fetchone()[0]
    per_issue = warehouse.execute(
        "select store_id, issued_at, count(*), min(lead_days), max(lead_days) from fct_weather_forecast"
        " group by all").fetchall()
    assert {r[0] for r in per_issue} <= {r[0] for r in warehouse.execute("select store_id from dim_store").fetchall()}
    assert len({r[0] for r in per_issue}) == stores
    # every issue covers the day it is issued and the nine after, but where a defect row was quarantined
    quarantined = sum(v for k, v in truth["counts"]["weather"].items() if k.startswith("quarantine:"))
    incomplete = [r for r in per_issue if not (r[2] == 10 and r[3] == 0 and r[4] == 9)]
    assert len(incomplete) <= quarantined and all(r[2] == 9 for r in incomplete)
    bad = warehouse.execute("select count(*) from fct_weather_forecast where temperature_min_c > temperature_max_c"
                            " or temperature_mean_c is null").fetchone()[0]
    assert bad == 0
    n = warehouse.execute("select count(*) from fct_weather_forecast").fetchone()[0]
    accepted = truth["counts"]["weather"]["rows_written"] - truth["counts"]["weather"]["duplicate"] - sum(
        v for k, v in truth["counts"]["weather"].items() if k.startswith("quarantine:"))
    assert n == accepted
