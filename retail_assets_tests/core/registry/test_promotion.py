"""The promotion gate: a worse version is held back and the store keeps serving; a better one goes live;
`retail promote` puts a challenger live by hand, audited."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from retail_assets.core import pipeline
from retail_assets.core.edge.keys import ensure_dev_keys
from retail_assets.core.features.grid import write_features
from retail_assets.core.fitting.train import train_store
from retail_assets.core.forecast.models import TrainConfig
from retail_assets.core.forecast.serving import forecast_store, last_servable_day, servable_features
from retail_assets.core.edge.bundle import load_private_key
from retail_assets.core.registry import audit
from retail_assets.core.registry import records as registry
from retail_assets.core.registry import promotion
from retail_assets.core.registry.promotion import PromotionPolicy
from retail_assets.core.registry.versions import live_version
from retail_assets.defs.forecasting.assets import promotion_check_result
from retail_assets.settings import DataLayout
from retail_assets_tests.helpers import noisy_weekly, retail_cli, synthetic_store

CFG = TrainConfig(horizon=14, folds=3, fold_horizon=14, min_train_days=42, raw_interval_samples=0)
DAYS = 180
POLICY = PromotionPolicy(tolerance=0.02, min_compare_days=7)


def _frame(inflate: float, days: int = DAYS):
    """Two items; every day before the last three weeks multiplied by `inflate` (a feed that double-counted
    for months): the held-out days are the same true sales whatever `inflate` is."""
    items = {"SKU-A": noisy_weekly(days, 20, 1), "SKU-B": noisy_weekly(days, 8, 2)}
    for y in items.values():
        y[: DAYS - 21] *= inflate
    return synthetic_store(items, horizon=14)


def _train(layout: DataLayout, inflate: float):
    frame = _frame(inflate)
    version = write_features(frame, layout.features_file("0001"))
    mv = train_store(frame, layout.models, version, CFG, workers=1, gate=POLICY)
    registry.record_model(layout.models, mv)
    return mv, frame


@pytest.mark.slow
def test_a_worse_version_is_held_back_a_better_one_goes_live_and_promote_is_audited(tmp_path):
    root = tmp_path / "data"
    layout = DataLayout(root)
    private_key, _public = ensure_dev_keys(root / "keys")

    bad, _ = _train(layout, 3.0)  # the store's first version: live, the store had nothing to serve
    assert bad.promotion["promote"] and bad.promotion["rule"] == "first_version"
    assert live_version(layout.models, "0001").version == bad.version

    good, _ = _train(layout, 1.0)  # the feed fixed: better on the same held-out days, so it goes live
    f = good.promotion["figures"]
    assert good.promotion["promote"] and good.promotion["rule"] == "same_days", good.promotion
    assert f["same_days_days"] >= POLICY.min_compare_days and f["live_version"] == bad.version
    assert f["same_days_wape_candidate"] < f["same_days_wape_live"]
    assert live_version(layout.models, "0001").version == good.version
    gate_line = registry.audit_log(layout.models, "0001")[-1]
    assert (gate_line["action"], gate_line["from"], gate_line["to"]) == ("gate", bad.version, good.version)
    # a store that requires approval: the same better version waits for `retail promote`
    waits = promotion.decide(good, bad, _frame(1.0), PromotionPolicy(approval_stores=("0001",)))
    assert (waits.promote, waits.rule) == (False, "approval_required")

    worse, frame = _train(layout, 2.5)  # the feed breaks again: held back, the store keeps serving `good`
    f = worse.promotion["figures"]
    assert not worse.promotion["promote"], worse.promotion
    assert f["same_days_wape_candidate"] > f["same_days_wape_live"] * (1 + POLICY.tolerance) \
        or f["heldout_wape_candidate"] >= f["heldout_wape_seasonal_naive"]
    assert live_version(layout.models, "0001").version == good.version
    entry = registry.history(layout.models, "0001")[-1]
    assert (entry["version"], entry["live"], entry["promotion"]["reason"]) == (
        worse.version, False, worse.promotion["reason"])
    assert [e["version"] for e in registry.challengers(layout.models, "0001")] == [worse.version]
    check = promotion_check_result(pipeline.ModelResult("0001", worse, frame))
    assert not check.passed and check.severity.value == "WARN" and "HELD BACK" in check.metadata["decision"].value

    # ten days later, still held back: the live version serves what is left of its own horizon, never a day
    # past its stored paths
    later = servable_features(good, _frame(1.0, DAYS + 10))
    served = forecast_store(good, later, 14)
    assert served.groupby("item_id").size().tolist() == [4, 4]
    assert pd.Timestamp(served["date"].max()) == last_servable_day(good)
    assert promotion._days_left(good, worse) == 14

    # the same inputs again: the challenger is decided again, not refit, and still held back
    again = train_store(frame, layout.models, write_features(frame, layout.features_file("0001")), CFG, workers=1,
                        gate=POLICY)
    assert again.reused and again.version == worse.version and not again.promotion["promote"]

    refused = retail_cli("promote", "--store", "0001", "--version", good.version, "--reason", "x", data_dir=root)
    assert refused.returncode != 0 and "no challenger" in refused.stderr
    done = retail_cli("promote", "--store", "0001", "--version", worse.version, "--reason", "planner knows the "
                      "promo", data_dir=root, env={"DAGSTER_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert live_version(layout.models, "0001").version == worse.version
    line = registry.audit_log(layout.models, "0001")[-1]
    assert (line["action"], line["from"], line["to"], line["reason"]) == (
        "promote", good.version, worse.version, "planner knows the promo")
    assert line["who"] and line["when"] and line["held_back_because"] == worse.promotion["reason"]
    assert registry.challengers(layout.models, "0001") == []
    bundles = [e for e in registry.history(layout.models, "0001") if e["kind"] == "bundle"]
    assert bundles[-1]["version"] == worse.version  # republished, verified, as a rollback is

    # what changed between the two: data, configuration, champions, accuracy, the forecast moved most
    shown = retail_cli("diff", "--store", "0001", good.version, worse.version, "--format", "json", data_dir=root)
    assert shown.returncode == 0, shown.stderr
    d = json.loads(shown.stdout)
    assert d["features_data_version"] == [good.manifest["features_data_version"],
                                          worse.manifest["features_data_version"]]
    assert d["config_changed"] == {} and d["libraries_changed"] == {}
    assert d["summary"]["heldout_weighted_wape_champion"] == [
        good.manifest["summary"]["heldout_weighted_wape_champion"],
        worse.manifest["summary"]["heldout_weighted_wape_champion"]]
    assert {r["item_id"] for r in d["champions_changed"]} == {
        i for i, info in good.manifest["items"].items() if info["champion"] != worse.manifest["items"][i]["champion"]}
    served = {v.version: forecast_store(v, frame, 14) for v in (good, worse)}
    for r in d["forecast_moved_most"]:  # each version's total is what it serves on the store's features
        assert r["forecast_total"] == pytest.approx(
            [float(served[v].loc[served[v]["item_id"] == r["item_id"], "yhat"].sum()) for v in d["versions"]])
    assert [abs(r["change"]) for r in d["forecast_moved_most"]] == sorted(
        (abs(r["change"]) for r in d["forecast_moved_most"]), reverse=True)
    # the audit's rollback drill: one store back to its previous version on a scratch copy, timed; the real
    # store untouched
    pointer = (layout.models / "store=0001" / "live.json").read_bytes()
    drill = audit.rollback_answer(layout, load_private_key(private_key.read_bytes()))
    f = drill["figures"]
    assert (f["store_id"], f["from_version"], f["to_version"]) == ("0001", worse.version, good.version), drill
    assert f["real_store_untouched"] and f["rollback_seconds"] > 0 and f["max_rel_error"] < 1e-4
    assert (layout.models / "store=0001" / "live.json").read_bytes() == pointer
    text = retail_cli("diff", "--store", "0001", good.version, worse.version, data_dir=root).stdout
    assert f"store 0001: {good.version} -> {worse.version}" in text and "forecast moved most" in text
