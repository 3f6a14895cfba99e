"""Prophet's maximum a posteriori fit in this process: the same objective as Prophet's Stan model
(`prophet/stan_model/prophet.stan`, linear trend), optimised by scipy's L-BFGS-B from the same start (in
Jacobi-scaled units, see `ProphetObjective.scales`), with no CmdStan process, no JSON data file and no CSV output
per fit.

A short Prophet fit spends most of its time launching the Stan executable and writing and reading files, not
optimising. This backend plugs into Prophet where its CmdStan backend does (`Prophet.stan_backend`), so
everything else, including the stored Prophet JSON, stays Prophet's own. The parameters it returns are the
ones Stan's `optimize` returns (k, m, delta, sigma_obs, beta, trend and lp__, the log density without
constants, as Stan computes it). `retail_assets_tests/core/forecast/test_prophet_map.py` checks, against CmdStan
on the same data and start, that the optimum is at least as high and the forecasts agree.

The changepoint prior is a Laplace density, whose |delta| has no gradient at 0; as is usual for L1 terms,
each delta is split into a positive and a negative part bounded at 0, which makes the objective smooth and
its optimum the same.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

import numpy as np

OPTIMIZER = "in_process"
"""The name a fit records for this backend (models.PROPHET_OPTIMIZERS); `cmdstan` is Prophet's own."""


RESTARTS = 10  # at most; two or three on the long additive fits, one elsewhere


class InProcessFitFailed(RuntimeError):
    """The in-process optimisation failed (diverged, did not converge, or a model it does not optimise): the
    caller refits with CmdStan and records it as a fallback. A time-out is a TimeoutError, never this."""


class UnsupportedModel(InProcessFitFailed):
    """A Prophet model this backend does not optimise (logistic or flat trend): use CmdStan."""


def _unpack(theta: np.ndarray, n_changepoints: int, n_features: int):
    k, m = theta[0], theta[1]
    positive = theta[2:2 + n_changepoints]
    negative = theta[2 + n_changepoints:2 + 2 * n_changepoints]
    sigma = theta[2 + 2 * n_changepoints]
    beta = theta[3 + 2 * n_changepoints:3 + 2 * n_changepoints + n_features]
    return k, m, positive, negative, sigma, beta


class ProphetObjective:
    """Minus the log density of Prophet's Stan model (linear trend), and its gradient."""

    def __init__(self, data: dict[str, Any]):
        if int(data["trend_indicator"]) != 0:
            raise UnsupportedModel("only the linear trend is optimised in process")
        self.t = np.asarray(data["t"], dtype=float)
        self.y = np.asarray(data["y"], dtype=float)
        n = len(self.t)
        x = np.asarray(data["X"], dtype=float).reshape(n, -1)
        self.x_add = x * np.asarray(data["s_a"], dtype=float)[None, :]
        self.x_mul = x * np.asarray(data["s_m"], dtype=float)[None, :]
        self.multiplicative = bool(np.any(self.x_mul))
        self.sigmas = np.asarray(data["sigmas"], dtype=float)
        self.tau = float(data["tau"])
        t_change = np.asarray(data["t_change"], dtype=float).reshape(-1)
        # Stan's changepoint matrix A (t >= t_change, t sorted) times (t - t_change): trend = k t + m + B delta
        self.b = (self.t[:, None] >= t_change[None, :]) * (self.t[:, None] - t_change[None, :])
        self.n_changepoints = len(t_change)
        self.n_features = x.shape[1]

    def unpack(self, theta: np.ndarray):
        return _unpack(theta, self.n_changepoints, self.n_features)

    def pack(self, init: dict[str, Any]) -> np.ndarray:
        delta = np.asarray(init["delta"], dtype=float).reshape(-1)
        return np.concatenate([[float(init["k"]), float(init["m"])], np.maximum(delta, 0), np.maximum(-delta, 0),
                               [max(float(init["sigma_obs"]), 1e-6)],
                               np.asarray(init["beta"], dtype=float).reshape(-1)])

    def parts(self, k, m, delta, beta):
        trend = k * self.t + m + self.b @ delta
        scale = 1.0 + self.x_mul @ beta if self.multiplicative else 1.0
        return trend, scale, trend * scale + self.x_add @ beta

    def scales(self, theta: np.ndarray) -> np.ndarray:
        """Each parameter's curvature scale at `theta` (the square root of the Gauss-Newton Hessian's diagonal,
        priors included). Optimising in these units (Jacobi preconditioning) leaves the bounds as bounds and the
        optimum where it is; holiday indicators and Fourier terms differ ~100x in scale, and L-BFGS-B needs ~10x
        fewer iterations this way (measured on the demo)."""
        k, m, positive, negative, sigma, beta = self.unpack(theta)
        trend, scale, mu = self.parts(k, m, positive - negative, beta)
        noise2 = max(float(np.mean((self.y - mu) ** 2)), 1e-6)
        trend_cols = np.column_stack([self.t, np.ones_like(self.t), self.b]) * np.reshape(scale, (-1, 1))
        beta_cols = self.x_add + self.x_mul * trend[:, None]
        trend_d = np.sqrt((trend_cols ** 2).sum(0) / noise2 + 1 / 25)
        beta_d = np.sqrt((beta_cols ** 2).sum(0) / noise2 + 1 / self.sigmas ** 2)
        d = np.concatenate([trend_d[:2], trend_d[2:], trend_d[2:], [np.sqrt(2 * len(self.y) / noise2)], beta_d])
        return np.maximum(d, 1e-6)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        k, m, positive, negative, sigma, beta = self.unpack(theta)
        delta = positive - negative
        trend, scale, mu = self.parts(k, m, delta, beta)
        resid = self.y - mu
        n = len(self.y)
        ss = float(resid @ resid)
        value = (n * np.log(sigma) + ss / (2 * sigma ** 2) + (k ** 2 + m ** 2) / 50.0
                 + (positive.sum() + negative.sum()) / self.tau + sigma ** 2 / 0.5
                 + float(np.sum(beta ** 2 / (2 * self.sigmas ** 2))))
        g_mu = -resid / sigma ** 2
        g_trend = g_mu * scale
        g_delta = self.b.T @ g_trend
        g_beta = self.x_add.T @ g_mu + beta / self.sigmas ** 2
        if self.multiplicative:
            g_beta = g_beta + self.x_mul.T @ (g_mu * trend)
        grad = np.concatenate([[g_trend @ self.t + k / 25.0, g_trend.sum() + m / 25.0],
                               g_delta + 1.0 / self.tau, -g_delta + 1.0 / self.tau,
                               [n / sigma - ss / sigma ** 3 + 4.0 * sigma], g_beta])
        return value, grad


@functools.cache
def _threadpools():
    """BLAS pools, found once per process (after scipy is loaded). The objective's products are small: with
    two BLAS threads and the machine's other core busy (a second fit, or anything else) an evaluation took
    about 160 us against 80 us with one thread (measured on the demo's data, 2 cores)."""
    import scipy.optimize  # noqa: F401 - its BLAS is loaded before the pools are listed
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def optimize(data: dict[str, Any], init: dict[str, Any], max_iter: int = 10_000,
             timeout_s: float | None = None) -> OrderedDict[str, np.ndarray]:
    """Prophet's parameters at the optimum, shaped as Prophet keeps them ((1, n) arrays). Raises TimeoutError
    past `timeout_s`, as CmdStan's fit does."""
    import time

    from scipy.optimize import minimize

    deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)

    objective = ProphetObjective(data)
    start = objective.pack(init)
    units = objective.scales(start)  # the optimiser works on start * units: the same problem, better scaled

    def scaled(z: np.ndarray) -> tuple[float, np.ndarray]:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"in-process Prophet fit timed out after {timeout_s}s")
        value, grad = objective(z / units)
        return value, grad / units

    s, f = objective.n_changepoints, objective.n_features
    bounds = [(None, None)] * 2 + [(0.0, None)] * (2 * s) + [(1e-9 * units[2 + 2 * s], None)] + [(None, None)] * f
    options = {"maxiter": int(max_iter), "maxfun": 4 * int(max_iter), "ftol": 1e-13, "gtol": 1e-9}
    # L-BFGS-B can stop early in the flat valleys of long additive fits (its curvature memory goes stale there);
    # restarted from where it stopped, it climbs on to the optimum CmdStan cannot improve on (the test)
    previous, z = np.inf, start * units
    with _threadpools().limit(limits=1, user_api="blas"):
        for _restart in range(RESTARTS):
            result = minimize(scaled, z, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
            z = result.x
            if not np.isfinite(result.fun) or previous - result.fun <= 1e-9 * abs(result.fun):
                break
            previous = result.fun
    result.x = z / units
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise InProcessFitFailed(f"in-process Prophet optimisation diverged: {result.message}")
    if not result.success and result.nit >= max_iter:
        raise InProcessFitFailed(f"in-process Prophet optimisation did not converge in {max_iter} iterations")
    k, m, positive, negative, sigma, beta = objective.unpack(result.x)
    delta = positive - negative
    trend, _scale, _mu = objective.parts(k, m, delta, beta)
    params: OrderedDict[str, np.ndarray] = OrderedDict()
    params["lp__"] = np.array([[-float(result.fun)]])
    params["k"] = np.array([[k]])
    params["m"] = np.array([[m]])
    params["delta"] = delta.reshape(1, -1)
    params["sigma_obs"] = np.array([[sigma]])
    params["beta"] = beta.reshape(1, -1)
    params["trend"] = trend.reshape(1, -1)
    return params


class InProcessBackend:
    """Prophet's stan backend interface (`fit`, `sampling`, `stan_fit`), optimising in this process."""

    def __init__(self) -> None:
        self.stan_fit = None
        self.newton_fallback = False

    @staticmethod
    def get_type() -> str:
        return OPTIMIZER

    def fit(self, stan_init: dict[str, Any], stan_data: dict[str, Any], **kwargs: Any) -> OrderedDict:
        init = stan_init
        custom = kwargs.get("init")
        if custom is not None:  # Prophet's rule (sanitize_custom_inits): a wrong shape keeps the default start
            init = dict(stan_init)
            for p in ("k", "m", "sigma_obs"):
                init[p] = float(custom[p])
            for p in ("delta", "beta"):
                if np.shape(custom[p]) == np.shape(stan_init[p]):
                    init[p] = np.asarray(custom[p], dtype=float)
        try:
            return optimize(stan_data, init, int(kwargs.get("iter", 10_000)), kwargs.get("timeout"))
        except (TimeoutError, InProcessFitFailed):
            raise
        except Exception as exc:  # noqa: BLE001 - numerical trouble inside the optimiser: CmdStan's turn
            raise InProcessFitFailed(f"{type(exc).__name__}: {exc}") from exc

    def sampling(self, *args: Any, **kwargs: Any):
        raise UnsupportedModel("MCMC sampling runs in CmdStan only")
