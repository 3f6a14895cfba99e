"""The final Prophet and classic fits are made only where the item's served forecast reads them (such a champion,
a combination with such a part), after the champions are known: the served forecasts and artifacts are those of
fitting every item's final models first; a served fit that fails hands the item its next best model."""

from __future__ import annotations

import dataclasses

import numpy as np

from retail_assets.core.fitting.champion import decide
from retail_assets.core.fitting.pool import FitPool, build_tasks
from retail_assets.core.fitting.store_models import add_store_models
from retail_assets.core.fitting.train import serve_finals, served_parts, train_store
from retail_assets.core.forecast.classic import CLASSIC_MODELS
from retail_assets.core.forecast.seasonal_index import SEASONAL_INDEX
from retail_assets.core.registry.versions import model_artifact
from retail_assets_tests.helpers import FAST_WITHOUT_INDEX, small_store, synthetic_store


def store():
    """Regular items of different shapes and an intermittent one; here no item is served by a model with a Prophet
    part (`small_store`'s are)."""
    rng = np.random.default_rng(5)
    n = 240
    t = np.arange(n)
    items = {
        "A-trend": 20 + 0.15 * t + 6 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1.5, n),
        "B-weekly": 30 * np.array([0.7, 0.8, 0.9, 1.0, 1.2, 1.6, 1.3])[t % 7] + rng.normal(0, 2, n),
        "C-noisy": rng.poisson(8, n).astype(float),
        "D-step": np.where(t < 160, 10.0, 25.0) + rng.normal(0, 1, n),
        "E-slow": (rng.random(n) < 0.08).astype(float),
    }
    return synthetic_store({k: np.clip(v, 0, None).round() for k, v in items.items()})


def trained(defer: bool, tasks_for_finals=None, features=None):
    tasks = build_tasks(store() if features is None else features, FAST_WITHOUT_INDEX)
    for t in tasks:
        t.defer_finals = defer
    with FitPool("processes", workers=1) as fits:
        results = fits.run(tasks)
        gbm_texts, _ = add_store_models(tasks, results, FAST_WITHOUT_INDEX)
        training = decide("0001", results, FAST_WITHOUT_INDEX, gbm_texts)
        counts = classic = None
        if defer:
            training, counts, classic = serve_finals(fits, tasks_for_finals(tasks) if tasks_for_finals else tasks,
                                                     training)
    return training, counts, classic


def test_deferred_final_fits_serve_what_fitting_every_item_first_serves():
    """Two stores: one whose items are served by models with a Prophet part (promotions, a trend), one whose
    regular items are served by others."""
    pairs, served, skipped, classic_served, classic_skipped = [], 0, 0, 0, 0
    for features in (store(), small_store(n_items=3, days=200)):
        eager, _, _ = trained(defer=False, features=features)
        lazy, counts, classic = trained(defer=True, features=features)
        pairs += list(zip(zip(eager.results, eager.decisions), zip(lazy.results, lazy.decisions)))
        fitted = sum("prophet" in served_parts(d.champion, r) for r, d in zip(lazy.results, lazy.decisions))
        not_made = sum(r.prophet_pending for r in lazy.results)
        assert counts == {"fitted": fitted, "failed": 0, "not_served": not_made}
        assert lazy.summary["fits"] == eager.summary["fits"] - not_made  # the fits not made are not counted
        served, skipped = served + fitted, skipped + not_made
        classic_fitted = sum(len(served_parts(d.champion, r) & set(r.future_paths) - {"analog", SEASONAL_INDEX})
                             for r, d in zip(lazy.results, lazy.decisions))
        assert classic == {"fitted": classic_fitted, "failed": 0,
                           "not_served": sum(len(r.classic_pending) for r in lazy.results)}
        classic_served += classic_fitted
        classic_skipped += classic["not_served"]
    assert served >= 1 and skipped >= 1, (served, skipped)  # both kinds occur
    assert classic_served >= 1 and classic_skipped >= 1, (classic_served, classic_skipped)
    shas = {}
    for (re, de), (rl, dl) in pairs:
        assert de.champion == dl.champion and de.reason == dl.reason
        assert re.weights == rl.weights
        assert model_artifact(de.champion, re, shas) == model_artifact(dl.champion, rl, shas)
        assert np.allclose(re.future_yhat[de.champion], rl.future_yhat[dl.champion])
        # the final Prophet fit exists exactly where the served forecast reads it
        reads = "prophet" in served_parts(dl.champion, rl)
        assert (rl.prophet_json is not None) == reads
        assert rl.prophet_pending == (not reads and re.prophet_json is not None)
        # and each classic model's final path exists exactly where it is served; the eager fit made them all
        for m in CLASSIC_MODELS:
            assert (m in rl.future_paths) == (m in served_parts(dl.champion, rl) and m in re.future_paths)
            assert (m in rl.classic_pending) == (m in re.future_paths and m not in served_parts(dl.champion, rl))


def test_a_served_prophet_fit_that_fails_serves_the_items_next_best_model():
    features = small_store(n_items=3, days=200)
    first, _, _ = trained(defer=True, features=features)
    victim = next(r.item_id for r, d in zip(first.results, first.decisions)
                  if "prophet" in served_parts(d.champion, r))

    def no_open_day(tasks):  # the final fit of one item sees no open day: Prophet refuses to fit it
        return [dataclasses.replace(t, open_day=[False] * len(t.open_day)) if t.item_id == victim else t
                for t in tasks]
    training, counts, _ = trained(defer=True, tasks_for_finals=no_open_day, features=features)
    assert counts["failed"] == 1 and counts["fitted"] >= 0
    r, d = next((r, d) for r, d in zip(training.results, training.decisions) if r.item_id == victim)
    assert r.prophet_error and "prophet" not in r.future_yhat and r.prophet_json is None
    assert d.status == "fallback" and "prophet" not in served_parts(d.champion, r)
    assert d.champion in r.future_yhat and d.error == r.prophet_error  # served a model it has, the reason kept
    assert training.summary["items_fallback"] == 1


def test_train_store_fits_prophet_only_for_the_items_it_serves(tmp_path):
    mv = train_store(store(), tmp_path, "features-v1", FAST_WITHOUT_INDEX, workers=1, warm_start=False)
    counts = mv.manifest["summary"]["prophet_final_fits"]
    items = mv.manifest["items"]
    by_prophet = [i for i, info in items.items() if info["champion"] == "prophet"
                  or "prophet" in (info["combination_weights"] or {}) and info["champion"] == "combination"]
    assert counts["fitted"] == len(by_prophet) and counts["failed"] == 0 and counts["not_served"] >= 1


def test_stores_trained_in_one_shared_pool_start_its_workers_once(tmp_path):
    """`retail run` trains each store in its own Dagster run, all in one process: with `shared_pool` open, the
    second store finds the workers the first started, and the models are those of a pool of its own."""
    from retail_assets.core.fitting.pool import shared_pool

    stores = {s: small_store(n_items=2, days=200, store=s) for s in ("0001", "0002")}
    with FitPool("processes", workers=2) as pool, shared_pool(pool):
        shared_mvs = {s: train_store(f, tmp_path / "shared", "features-v1", FAST_WITHOUT_INDEX, warm_start=False)
                      for s, f in stores.items()}
        executor = pool._executor
    assert executor is not None and pool._executor is None  # started once, closed with the block
    assert shared_mvs["0001"].manifest["summary"]["fit_workers_already_up"] is False
    assert shared_mvs["0002"].manifest["summary"]["fit_workers_already_up"] is True
    own = train_store(stores["0002"], tmp_path / "own", "features-v1", FAST_WITHOUT_INDEX, workers=2, warm_start=False)
    assert own.manifest["summary"]["fit_workers_already_up"] is False
    assert own.version == shared_mvs["0002"].version


def test_a_served_classic_fit_that_fails_serves_the_items_next_best_model():
    features = store()
    first, _, _ = trained(defer=True, features=features)
    victim, parts = next((r.item_id, served_parts(d.champion, r) & {"ets", "theta"})
                         for r, d in zip(first.results, first.decisions)
                         if served_parts(d.champion, r) & {"ets", "theta"})

    def three_periods(tasks):  # the final fits of one item see a window of three periods: ETS and Theta refuse it
        return [dataclasses.replace(t, cfg=dataclasses.replace(t.cfg, classic_window=3)) if t.item_id == victim
                else t for t in tasks]
    training, _, classic = trained(defer=True, tasks_for_finals=three_periods, features=features)
    assert classic["failed"] == len(parts)
    r, d = next((r, d) for r, d in zip(training.results, training.decisions) if r.item_id == victim)
    assert not parts & set(r.future_yhat) and not r.classic_pending
    served = served_parts(d.champion, r)
    assert not served & parts and served <= set(r.future_yhat)  # served a model it has
    assert np.isfinite(r.future_yhat[d.champion]).all()
    # recorded as the fallback it is, with the reason
    assert d.status == "fallback" and d.error.startswith("final fit of ") and "could not fit" in d.error
    assert training.summary["items_fallback"] == 1
