"""Prophet's data reaches cmdstan through stanio's JSON writer: the feature matrix as an array
(models.stan_data_as_arrays) and ujson (a pinned dependency) instead of nested lists walked by Python's
pure-Python encoder. Faster only if the optimum is the same: the same fit through both gives the very same
parameters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import stanio.json as stan_json
import ujson

from prophet.models import CmdStanPyBackend

from retail_assets.core.forecast.models import TrainConfig, fit_prophet, prophet_spec


def test_prophet_data_goes_as_arrays_through_ujson_and_gives_the_same_optimum(monkeypatch):
    assert stan_json.UJSON_AVAILABLE  # the fast writer is installed and stanio uses it
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=n, freq="D"),
                          "y": rng.poisson(12 + 4 * np.sin(np.arange(n) * 2 * np.pi / 7)).astype(float) / 3,
                          "promo": (rng.random(n) < 0.1).astype(float)})
    cfg = TrainConfig()
    spec = prophet_spec(frame, cfg)
    fast, _ = fit_prophet(frame, None, cfg, spec, None)
    assert CmdStanPyBackend.prepare_data.matrix_as_array
    monkeypatch.setattr(CmdStanPyBackend, "prepare_data", staticmethod(CmdStanPyBackend.prepare_data.original))
    monkeypatch.setattr(stan_json, "UJSON_AVAILABLE", False)
    monkeypatch.setattr(stan_json, "json", json)
    monkeypatch.setattr("retail_assets.core.forecast.models.stan_data_as_arrays", lambda: None)
    slow, _ = fit_prophet(frame, None, cfg, spec, None)
    assert not getattr(CmdStanPyBackend.prepare_data, "matrix_as_array", False)
    for name in ("k", "m", "delta", "beta", "sigma_obs"):
        np.testing.assert_array_equal(np.asarray(fast.params[name]), np.asarray(slow.params[name]), err_msg=name)
    # and ujson writes every double so that it parses back to itself
    values = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-20, 20, 2000), [1 / 3, 5e-324]])
    assert np.array_equal(np.array(json.loads(ujson.dumps(values.tolist()))), values)
