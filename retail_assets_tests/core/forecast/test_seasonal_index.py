"""The store's seasonal-index model (core/forecast/seasonal_index.py): it recovers shared shapes from the
store's items, reads nothing on or after its cutoff and no closed day, matches every factor level's fitted
total to its sold total (the Poisson maximum-likelihood fit), and joins the store's zoo like its other models."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core.forecast import seasonal_index as si

WEEKDAY = np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.5, 0.8])
MONTH = np.array([0.8, 0.8, 0.9, 1.0, 1.0, 1.1, 1.2, 1.2, 1.0, 1.0, 1.0, 1.3])
LEVELS = [3.0, 8.0, 20.0, 50.0]


def _items(days: int = 900, start: str = "2022-01-01", seed: int = 3, closed_sundays: bool = False,
           promo_at=None) -> tuple[list[dict], np.ndarray]:
    """Items whose daily mean is level x weekday x month x (1.1 from the second year), Poisson draws; and the
    true means, item after item."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    shape = WEEKDAY[dates.dayofweek] * MONTH[dates.month - 1] * np.where(dates.year > dates[0].year, 1.1, 1.0)
    items, means = [], []
    for k, level in enumerate(LEVELS):
        mean = level * shape
        open_day = ~((dates.dayofweek == 6) & closed_sundays)
        y = np.where(open_day, rng.poisson(mean), 0.0)
        promo = np.zeros(days) if promo_at is None else promo_at(dates)
        items.append({"item_id": f"SKU-{k}", "dates": dates.strftime("%Y-%m-%d").tolist(), "y": y.tolist(),
                      "open_day": open_day.tolist(), "promo": promo.tolist(), "holiday": [None] * days,
                      "n_history": days})
        means.append(mean)
    return items, np.concatenate(means)


def test_it_recovers_the_shapes_the_items_share_and_forecasts_near_the_true_mean():
    items, means = _items()
    rows = si.store_rows(items, "D")
    cutoff = pd.Timestamp("2024-05-01")
    model = si.fit(rows, cutoff, "D")
    weekday = model.factors["day_of_week"] / model.factors["day_of_week"].mean()
    assert np.allclose(weekday, WEEKDAY / WEEKDAY.mean(), rtol=0.03), weekday
    assert model.years == [2022, 2023, 2024]
    year = model.factors["year"] / model.factors["year"][0]
    assert np.allclose(year, [1.0, 1.1, 1.1], rtol=0.03), year  # the generated step up after the first year
    ahead = np.flatnonzero((rows.ds >= cutoff) & (rows.ds < cutoff + pd.Timedelta(days=28)))
    forecast = si.predict(model, rows, ahead)
    # against the true mean: a few % (estimation only); against the draws: the Poisson noise around it
    assert np.abs(forecast - means[ahead]).sum() / means[ahead].sum() < 0.04
    naive = rows.y[ahead - 7]  # last week's sales, what seasonal naive serves at horizon one week
    assert np.abs(rows.y[ahead] - forecast).sum() < 0.8 * np.abs(rows.y[ahead] - naive).sum()


def test_a_fit_reads_no_sale_on_or_after_its_cutoff_and_no_closed_day():
    items, _ = _items(closed_sundays=True)
    cutoff = pd.Timestamp("2023-06-01")
    before = si.fit(si.store_rows(items, "D"), cutoff, "D")
    changed = [dict(it, y=[v if d < "2023-06-01" else v * 5 + 100 for d, v in zip(it["dates"], it["y"])])
               for it in items]
    after = si.fit(si.store_rows(changed, "D"), cutoff, "D")
    for k in before.factors:
        assert np.array_equal(before.factors[k], after.factors[k]), k
    # every Sunday closed with 0 units: the weekday factor has no Sunday, the other days' are not pulled down
    assert not before.seen["day_of_week"][6]
    open_days = before.factors["day_of_week"][:6] / before.factors["day_of_week"][:6].mean()
    assert np.allclose(open_days, WEEKDAY[:6] / WEEKDAY[:6].mean(), rtol=0.03)


def test_a_year_with_a_few_weeks_of_history_takes_the_year_before_and_a_new_depth_the_nearest_seen():
    items, _ = _items(days=800, promo_at=lambda d: np.where(d.dayofweek == 4, 0.2, 0.0))
    rows = si.store_rows(items, "D")
    early = si.fit(rows, pd.Timestamp("2024-01-20"), "D")  # 19 days of 2024
    assert early.years == [2022, 2023]
    later = si.fit(rows, pd.Timestamp("2024-03-01"), "D")
    assert later.years == [2022, 2023, 2024]
    jan = np.flatnonzero(rows.ds == pd.Timestamp("2024-01-25"))
    assert np.array_equal(si._year_levels(rows.codes["year"][jan], early.years), [1] * len(jan))
    rows.codes["promo"][jan] = 4  # 40 % off, never seen: the 20 % factor, not none
    got = si.predict(early, rows, jan)
    rows.codes["promo"][jan] = 2
    assert np.allclose(got, si.predict(early, rows, jan))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), min_size=60, max_size=60), min_size=2, max_size=4),
       st.lists(st.booleans(), min_size=60, max_size=60))
def test_every_factor_levels_fitted_total_is_its_sold_total(sales, promo_days):
    """The Poisson maximum-likelihood fit of main effects: each level's fitted sum equals its sold sum."""
    dates = pd.date_range("2023-11-01", periods=60, freq="D").strftime("%Y-%m-%d").tolist()
    items = [{"item_id": f"I{k}", "dates": dates, "y": y, "open_day": [True] * 60,
              "promo": [0.3 if p else 0.0 for p in promo_days], "holiday": [None] * 60, "n_history": 60}
             for k, y in enumerate(sales)]
    rows = si.store_rows(items, "D")
    model = si.fit(rows, pd.Timestamp("2024-12-31"), "D")
    fitted = si.predict(model, rows, np.arange(len(rows.y)))
    for k, codes in rows.codes.items():
        for level in np.unique(codes):
            at = codes == level
            assert np.isclose(fitted[at].sum(), rows.y[at].sum(), rtol=1e-4, atol=1e-4), (k, level)
