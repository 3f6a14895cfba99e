"""Edge forecast latency: the store bundle (one onnxruntime call for every item) vs Prophet `predict`.

One store of 50 items (Prophet fits on generated demand), h = 28. Prints p50/p99 of a whole-store bundle
forecast and of Prophet predict for the same items, both measured here, their ratio, and the bundle size.
Goals (issue 6): >= 1000x faster than Prophet predict, p99 under 1 ms, bundle under 1 MB per store.

    .venv/bin/python bench/edge.py [--items 50] [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.edge.bundle import build_bundle, load_private_key
from retail_assets.core.edge.keys import ensure_dev_keys
from retail_assets.core.fitting.train import train_store
from retail_assets.edge import runner


def store_features(items: int, days: int = 800, horizon: int = 28) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    dates = pd.date_range("2023-01-02", periods=days + horizon, freq="D")
    weekly = np.array([0.8, 0.9, 0.9, 1.0, 1.1, 1.4, 1.2])
    for i in range(items):
        level = rng.uniform(2, 40)
        season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(len(dates)) / 365.25 + rng.uniform(0, 6))
        y = rng.poisson(level * weekly[dates.dayofweek] * season).astype(float)
        for k, d in enumerate(dates):
            fut = k >= days
            rows.append({"store_id": "0001", "item_id": f"SKU-{i:04d}", "date": d, "is_future": fut,
                         "units": None if fut else y[k], "is_open_day": True, "promo_planned": k % 17 == 0,
                         "holiday_name": "Black Friday" if (d.month == 11 and d.day == 24) else None,
                         "fiscal_year": d.year, "fiscal_week": 1})
    return pd.DataFrame(rows)


def pct(times: list[float], q: float) -> float:
    times = sorted(times)
    return times[min(len(times) - 1, int(q * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_edge_"))
    features = store_features(args.items)
    print(f"training {args.items} items ...", flush=True)
    mv = train_store(features, root / "models", "bench", TrainConfig(), workers=2)
    priv, pub = ensure_dev_keys(root / "keys")
    bundle = build_bundle(mv, features, 28, load_private_key(priv.read_bytes()), root / "bundles", "bench")
    loaded = runner.load_bundle(bundle.path, runner.read_public_key(pub))
    feeds, _, _ = runner.inputs_for(loaded)
    for _ in range(20):
        loaded.session.run(["yhat"], feeds)
    edge = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        loaded.session.run(["yhat"], feeds)
        edge.append((time.perf_counter() - t0) * 1000)
    from prophet.serialize import model_from_json

    future = features[features["is_future"]]
    prophet_items = [i for i, d in mv.manifest["items"].items() if d["champion"] == "prophet"]
    models = {}
    for item in prophet_items:  # loaded once, like a server would: time predict only
        models[item] = model_from_json((mv.path / mv.manifest["items"][item]["file"]).read_text())
        models[item].uncertainty_samples = 0
    per_item = []
    for _rep in range(3):
        for item in prophet_items:
            fut = future[future["item_id"] == item]
            frame = pd.DataFrame({"ds": fut["date"].values, "promo": fut["promo_planned"].astype(int).values})
            t0 = time.perf_counter()
            models[item].predict(frame)
            per_item.append((time.perf_counter() - t0) * 1000)
    prophet_store = [t * args.items for t in per_item]  # one Prophet predict per item of the store
    e50, e99 = statistics.median(edge), pct(edge, 0.99)
    p50, p99 = statistics.median(prophet_store), pct(prophet_store, 0.99)
    print(f"store of {args.items} items ({len(prophet_items)} Prophet champions), horizon 28 days")
    print(f"  bundle (onnxruntime, one call): p50 {e50:.3f} ms, p99 {e99:.3f} ms over {args.runs} runs")
    print(f"  Prophet predict (models preloaded, no sampling), per item: p50 {statistics.median(per_item):.1f} ms;"
          f" x{args.items} items: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(per_item)} timings)")
    print(f"  speed-up p50: {p50 / e50:,.0f}x (goal >= 1000x: {'met' if p50 / e50 >= 1000 else 'NOT met'})")
    print(f"  p99 under 1 ms: {'met' if e99 < 1 else 'NOT met'}; bundle size {bundle.size_bytes:,} bytes "
          f"(goal < 1 MB: {'met' if bundle.size_bytes < 1_000_000 else 'NOT met'})")
    print(f"  parity at publish: max relative error {bundle.manifest['verification']['max_rel_error']:.2e}")


if __name__ == "__main__":
    sys.exit(main())
