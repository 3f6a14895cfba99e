"""Each Great Expectations family fails on a crafted bad input, naming the expectation, with counts and samples."""

from __future__ import annotations

import pandas as pd
import pytest

from retail_assets.core.quality import suites
from retail_assets.core.quality.gx import validate_frame

CFG = suites.ValidationConfig(min_history_days=30, horizon_days=7)


def _demand(n_days=70, stores=("0001", "0002"), items=("SKU-0001", "SKU-0002")) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=n_days, freq="D")
    rows = [{"store_id": s, "item_id": i, "business_date": d, "units_total": 5 + (k % 3)}
            for s in stores for i in items for k, d in enumerate(dates)]
    return pd.DataFrame(rows)


STORES = pd.DataFrame({"store_id": ["0001", "0002"], "opened_on": pd.to_datetime(["2020-01-01", "2020-01-01"])})


def _failed(outcome) -> set[str]:
    return {o.label for o in outcome.failed}


def _values(demand):
    frame = suites.add_unit_caps(suites.demand_values_frame(demand, STORES), CFG)
    return validate_frame(frame, suites.demand_values_suite(["0001", "0002"], ["SKU-0001", "SKU-0002"]))


def test_demand_values_pass_on_good_data():
    assert _values(_demand()).success


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.assign(store_id=d["store_id"].where(d.index != 3, "9999")),
         "expect_column_values_to_be_in_set(store_id)"),
        (lambda d: d.assign(item_id=d["item_id"].where(d.index != 3, "SKU-X")),
         "expect_column_values_to_be_in_set(item_id)"),
        (lambda d: pd.concat([d, d.iloc[[5]]], ignore_index=True),
         "expect_compound_columns_to_be_unique(['store_id', 'item_id', 'business_date'])"),
        (lambda d: d.assign(units_total=d["units_total"].where(d.index != 7, -2)),
         "expect_column_values_to_be_between(units_total)"),
        (lambda d: d.assign(units_total=d["units_total"].where(d.index != 7, 100_000)),
         "expect_column_pair_values_a_to_be_greater_than_b(units_cap vs units_total)"),
        (lambda d: d.assign(business_date=d["business_date"].where(d.index != 9, pd.Timestamp("2019-06-01"))),
         "expect_column_pair_values_a_to_be_greater_than_b(business_date vs opened_on)"),
    ],
)
def test_demand_values_fail_on_crafted_bad_rows(mutate, expected):
    outcome = _values(mutate(_demand()))
    assert not outcome.success
    assert expected in _failed(outcome)
    failed = next(o for o in outcome.failed if o.label == expected)
    assert failed.unexpected_count >= 1 and failed.unexpected_sample


def test_completeness_fails_for_a_missing_open_store_day():
    demand = _demand()
    open_days = demand[["store_id", "business_date"]].drop_duplicates()
    assert validate_frame(suites.completeness_frame(demand, open_days), suites.completeness_suite()).success
    holed = demand[~((demand["store_id"] == "0002") & (demand["business_date"] == "2024-01-10"))]
    outcome = validate_frame(suites.completeness_frame(holed, open_days), suites.completeness_suite())
    assert _failed(outcome) == {"expect_column_values_to_be_between(rows_for_day)"}
    assert outcome.failed[0].unexpected_count == 1


def test_volume_fails_when_a_store_collapses():
    demand = _demand()
    assert validate_frame(suites.volume_frame(demand), suites.volume_suite(CFG)).success
    last_week = demand["business_date"] > demand["business_date"].max() - pd.Timedelta(days=7)
    dead = demand.assign(units_total=demand["units_total"].where(~(last_week & (demand["store_id"] == "0001")), 0))
    frame = suites.volume_frame(dead)
    outcome = validate_frame(frame, suites.volume_suite(CFG))
    assert _failed(outcome) == {"expect_column_values_to_be_between(volume_ratio)"}
    assert frame.set_index("store_id").loc["0001", "volume_ratio"] == 0


def test_ingest_fails_above_the_quarantine_rate_or_when_not_reconciled():
    good = pd.DataFrame({"source_file": ["a", "b"], "quarantine_rate": [0.0, 0.01], "reconciled": [True, True],
                         "rejected_reason": [None, None]})
    assert validate_frame(good, suites.ingest_suite(CFG)).success
    bad = good.assign(quarantine_rate=[0.0, 0.5], reconciled=[False, True])
    assert _failed(validate_frame(bad, suites.ingest_suite(CFG))) == {
        "expect_column_values_to_be_between(quarantine_rate)", "expect_column_values_to_be_in_set(reconciled)"}
    rejected = good.assign(reconciled=[False, True], rejected_reason=["empty file: no header line", None])
    assert _failed(validate_frame(rejected, suites.ingest_suite(CFG))) == {
        "expect_column_values_to_be_in_set(reconciled)", "expect_column_values_to_be_null(rejected_reason)"}


def _features(history=40, horizon=7, items=("SKU-0001", "SKU-0002")) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=history + horizon, freq="D")
    rows = []
    for i in items:
        for k, d in enumerate(dates):
            fut = k >= history
            rows.append({"store_id": "0001", "item_id": i, "date": d, "is_future": fut,
                         "units": None if fut else float(3 + k % 4), "is_open_day": True,
                         "promo_planned": k % 10 == 0, "is_holiday": False})
    return pd.DataFrame(rows)


def _features_outcome(frame):
    frames = suites.features_frames(frame, CFG)
    return {n: validate_frame(frames[n], s) for n, s in suites.features_suites(CFG).items()}


def test_features_pass_on_good_data():
    assert all(o.success for o in _features_outcome(_features()).values())


@pytest.mark.parametrize(
    "mutate, suite, expected",
    [
        (lambda f: f.drop(index=10), "history", "expect_column_values_to_be_between(days_since_previous_row)"),
        (lambda f: f.assign(units=f["units"].where(f["item_id"] != "SKU-0002", 0.0).where(~f["is_future"], None)),
         "items", "expect_column_values_to_be_between(history_units)"),
        (lambda f: f.drop(index=f.index[f["is_future"] & (f["item_id"] == "SKU-0001")][-1]),
         "items", "expect_column_values_to_be_between(future_rows)"),
        (lambda f: f.assign(promo_planned=f["promo_planned"].astype(object).where(
            ~(f["is_future"] & (f.index % 3 == 0)), None)),
         "items", "expect_column_values_to_be_between(future_rows_missing_flags)"),
        (lambda f: f[f["date"] >= "2024-01-20"], "store", "expect_column_values_to_be_between(history_days)"),
        (lambda f: f.assign(units=f["units"].where(~f["date"].between("2024-01-05", "2024-01-20"), 0.0)),
         "store", "expect_column_values_to_be_between(longest_zero_sales_streak_days)"),
    ],
)
def test_features_fail_on_crafted_bad_input(mutate, suite, expected):
    outcome = _features_outcome(mutate(_features()))[suite]
    assert expected in _failed(outcome)
