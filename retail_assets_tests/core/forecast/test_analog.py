"""The analog forecast of a young store: stages at their thresholds, a deterministic analog choice, and a
forecast that never reads anything dated on or after its origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core.forecast import analog


def test_stages_switch_at_their_thresholds():
    assert analog.history_stage(0, 0, 56) == "cold_start"
    assert analog.history_stage(55, 70, 56) == "cold_start"
    assert analog.history_stage(56, 70, 56) == "weekly"
    assert analog.history_stage(300, 364, 56) == "weekly"
    assert analog.history_stage(300, 365, 56) == "mature"


def _stores() -> pd.DataFrame:
    return pd.DataFrame({
        "store_id": ["0001", "0002", "0003", "0004", "0005", "0009"],
        "region": ["US", "US", "US", "UK", "US", "US"],
        "climate_zone": ["humid", "humid", "arid", "humid", "humid", "humid"],
        "history_days": [900, 800, 1000, 1000, 100, 10],
    })


def test_analogs_by_attributes_then_wider_and_always_the_same():
    stores = _stores()
    # 0009 (US, humid): mature US humid stores are 0001 and 0002 (0005 is young, never an analog)
    assert analog.choose_analogs(stores, "0009") == (["0001", "0002"], "same region and climate zone")
    shuffled = stores.sample(frac=1.0, random_state=3)
    assert analog.choose_analogs(shuffled, "0009") == analog.choose_analogs(stores, "0009")
    arid = stores.assign(climate_zone=stores["climate_zone"].where(stores["store_id"] != "0009", "arid"))
    assert analog.choose_analogs(arid, "0009") == (["0001", "0002", "0003"], "same region")
    alone = stores[stores["store_id"].isin(["0004", "0009"])]
    assert analog.choose_analogs(alone, "0009") == (["0004"], "every mature store")
    assert analog.choose_analogs(stores[stores["store_id"] == "0009"], "0009")[0] == []


def test_after_a_few_weeks_the_most_similar_early_sales_choose():
    stores = _stores()
    days = pd.date_range("2024-01-01", periods=analog.SIMILARITY_DAYS)
    rng = np.random.default_rng(0)
    shape = rng.gamma(2.0, 2.0, size=(2, len(days)))
    rows = []
    for sid, k in (("0001", 1), ("0002", 0), ("0003", 1), ("0004", 0), ("0009", 1)):
        for item in range(2):
            noise = rng.normal(0, 0.05, len(days)) if sid != "0009" else 0
            rows += [(sid, f"I{item}", d, float(v)) for d, v in zip(days, shape[(item + k) % 2] + noise)]
    early = pd.DataFrame(rows, columns=["store_id", "item_id", "date", "units"])
    chosen, rule = analog.choose_analogs(stores, "0009", early)
    assert rule.startswith("most similar early sales")
    assert chosen[:2] == ["0001", "0003"]  # the stores that sell like it, whatever their attributes
    assert analog.choose_analogs(stores, "0009", early.iloc[::-1]) == (chosen, rule)


def test_a_store_at_the_analogs_level_gets_their_profile_and_a_smaller_store_is_scaled():
    week = np.array([10.0, 10, 10, 10, 10, 20, 30])
    ref = np.tile(week, 60)  # 420 days, the store's day 0 = reference day 400
    path = analog.analog_path(ref, -400, np.array([]), np.array([], bool), 0, 14)
    assert np.allclose(path, ref[400:414])
    own = ref[400:420] * 0.5
    half = analog.analog_path(ref, -400, own, np.ones(20, bool), 20, 7)
    n = 20
    expected = (n / (n + analog.LEVEL_PRIOR_DAYS)) * 0.5 + (analog.LEVEL_PRIOR_DAYS / (n + analog.LEVEL_PRIOR_DAYS))
    assert np.allclose(half, week[(420 + np.arange(7)) % 7] * expected)


@settings(max_examples=40, deadline=None)
@given(origin=st.integers(0, 120), horizon=st.integers(1, 28), seed=st.integers(0, 10_000))
def test_the_forecast_never_reads_data_on_or_after_its_origin(origin, horizon, seed):
    rng = np.random.default_rng(seed)
    ref_start = -450
    ref = rng.gamma(2.0, 3.0, 450 + 150)
    own = rng.poisson(4.0, 150).astype(float)
    open_ = rng.random(150) > 0.1
    before = analog.analog_path(ref, ref_start, own, open_, origin, horizon)
    ref2, own2, open2 = ref.copy(), own.copy(), open_.copy()
    ref2[origin - ref_start:] = rng.gamma(5.0, 9.0, len(ref2) - (origin - ref_start))  # the future changes
    own2[origin:] = 999.0
    open2[origin:] = ~open2[origin:]
    after = analog.analog_path(ref2, ref_start, own2, open2, origin, horizon)
    assert before is not None and np.array_equal(before, after)
