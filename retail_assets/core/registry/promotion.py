"""The promotion gate: a new version goes live only when it earns it.

A trained version is a candidate. It goes live when, on the same held-out days, its forecasts are not worse than
the live version's beyond `tolerance` (relative weighted WAPE) and its held-out champion beats seasonal naive.
Otherwise it is a challenger: registered with the reason, never served until `retail promote` puts it live.

The same days, both forecasts out of sample: the candidate's held-out fold (its champion chosen on the earlier
folds, as its summary scores it). The live version's forecast of a day is its own held-out fold's (the same
method, chosen the same way) where that fold covers the day, else what it served (from the day after its
history ended). Days neither covers (between the live version's last fold day and its history end) are left
out. Rules where that cannot be done (`RULES`): a store's first version goes live (a store without a model serves
nothing) and says whether it beats seasonal naive; a candidate the live version cannot be scored against (no
held-out fold, fewer than `min_compare_days` shared days, no item in common) goes live when it beats seasonal naive
(a candidate without a held-out score of its own, a store too young for a held-out fold, goes live unscored),
and so does one whose live version has fewer than `min_serving_days` left to serve (a version forecasts its
history's end plus its horizon, no further; until then a held-back challenger's store serves the rest of the live
version's horizon).
Pure: no Dagster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from retail_assets.core.metrics import wape
from retail_assets.core.registry.versions import ModelVersion

RULES = {
    "same_days": "compared with the live version on the same held-out days",
    "seasonal_naive": "held back: its held-out champion does not beat seasonal naive",
    "first_version": "the store's first version: live, the store had nothing to serve",
    "not_comparable": "the live version cannot be scored on the candidate's held-out days: live if it beats "
                      "seasonal naive, or if it has no held-out score itself (a store too young for a held-out fold)",
    "approval_required": "the store requires approval for every promotion (`retail promote`)",
    "live_expired": "the live version can serve fewer than min_serving_days of the days ahead (its horizon ends): "
                    "live if it beats seasonal naive or has no held-out score",
    "ungated": "trained without the gate (a direct call of the core, not the pipeline)",
}


@dataclass(frozen=True)
class PromotionPolicy:
    tolerance: float = 0.05  # the candidate may be this much worse (relative WAPE) than the live version
    min_compare_days: int = 7  # fewer shared held-out days than this: the live version is not comparable
    min_serving_days: int = 7  # a live version with fewer days left to serve is replaced by any candidate
    # that beats seasonal naive (a version serves its history's end plus its horizon, no further)
    approval_stores: tuple[str, ...] = ()  # stores whose every promotion needs `retail promote`


@dataclass
class Decision:
    promote: bool
    rule: str
    reason: str
    figures: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def _last_fold(mv: ModelVersion) -> pd.DataFrame:
    """The version's held-out fold: every model's forecast per item and day (backtest.parquet)."""
    bt = pd.read_parquet(mv.path / "backtest.parquet")
    recent = bt[bt["kind"] == "recent"]
    if recent.empty:
        return recent
    fold = recent[recent["fold"] == recent["fold"].max()].copy()
    fold["date"] = pd.to_datetime(fold["date"])
    return fold


def _champion_column(fold: pd.DataFrame, mv: ModelVersion) -> pd.Series:
    """Each row's forecast by its item's held-out champion (NaN where the version has none)."""
    champ = fold["item_id"].map({i: d.get("heldout_champion") for i, d in mv.manifest["items"].items()})
    out = pd.Series(np.nan, index=fold.index)
    for model, rows in fold.groupby(champ).groups.items():
        if model in fold.columns:
            out.loc[rows] = pd.to_numeric(fold.loc[rows, model], errors="coerce")
    return out


def _served(live: ModelVersion, features: pd.DataFrame, days: pd.DataFrame, history_end) -> pd.Series:
    """The live version's served forecast on `days` after its history ended (serving.predict_item)."""
    from retail_assets.core.forecast.serving import future_frame, predict_item

    out = pd.Series(np.nan, index=days.index)
    after = days[days["date"] > history_end]
    if after.empty:
        return out
    rows = features.assign(date=pd.to_datetime(features["date"]))
    for item_id, g in after.groupby("item_id"):
        if item_id not in live.manifest["items"]:
            continue
        f = rows[rows["item_id"] == item_id].set_index("date").reindex(g["date"]).reset_index()
        if f["is_open_day"].isna().any():
            continue
        try:
            out.loc[g.index] = predict_item(live, item_id, future_frame(f))
        except ValueError:  # a day past the live version's stored paths or weather outlook: not comparable
            continue
    return out


def compare_same_days(candidate: ModelVersion, live: ModelVersion, features: pd.DataFrame) -> dict:
    """Weighted WAPE of both versions on the candidate's held-out days that both forecast out of sample."""
    fold = _last_fold(candidate)
    if fold.empty:
        return {"days": 0, "rows": 0}
    fold = fold[fold["is_open_day"].astype(bool) & fold["item_id"].isin(live.manifest["items"])].copy()
    fold["candidate"] = _champion_column(fold, candidate)
    live_fold = _last_fold(live)
    by_key = pd.Series(dtype=float)
    if not live_fold.empty:
        live_fold["live"] = _champion_column(live_fold, live)
        by_key = live_fold.set_index(["item_id", "date"])["live"]
    fold["live"] = by_key.reindex(pd.MultiIndex.from_frame(fold[["item_id", "date"]])).to_numpy()
    missing = fold["live"].isna()
    history_end = live.manifest["summary"].get("history_end")
    if missing.any() and history_end:  # a version before it was recorded: its own held-out days only (the
        # days after its last fold may be in its history: served there they would be in-sample)
        fold.loc[missing, "live"] = _served(live, features, fold[missing], pd.Timestamp(history_end))
    both = fold.dropna(subset=["candidate", "live"])
    y = both["y"].to_numpy(float)
    return {"days": int(both["date"].nunique()), "rows": len(both), "items": int(both["item_id"].nunique()),
            "first_day": str(both["date"].min().date()) if len(both) else None,
            "last_day": str(both["date"].max().date()) if len(both) else None,
            "wape_candidate": wape(y, both["candidate"].to_numpy(float)) if len(both) else None,
            "wape_live": wape(y, both["live"].to_numpy(float)) if len(both) else None}


def _days_left(live: ModelVersion, candidate: ModelVersion) -> int | None:
    """Days the live version can still serve after the candidate's history ends (None: not recorded)."""
    from retail_assets.core.forecast.serving import last_servable_day

    last, end = last_servable_day(live), candidate.manifest["summary"].get("history_end")
    return None if last is None or not end else max(0, (last - pd.Timestamp(end)).days)


def _fmt(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def decide(candidate: ModelVersion, live: ModelVersion | None, features: pd.DataFrame,
           policy: PromotionPolicy) -> Decision:
    """Whether `candidate` goes live (module docstring: the rules, in this order)."""
    s = candidate.manifest["summary"]
    champ, naive = s.get("heldout_weighted_wape_champion"), s.get("heldout_weighted_wape_seasonal_naive")
    scored = champ is not None and naive is not None and np.isfinite(champ) and np.isfinite(naive)
    beats_naive = scored and champ < naive
    figures = {"heldout_wape_candidate": champ, "heldout_wape_seasonal_naive": naive, "tolerance": policy.tolerance}
    naive_text = (f"held-out WAPE {_fmt(champ)} against seasonal naive {_fmt(naive)}" if scored
                  else "no held-out score against seasonal naive (no held-out fold)")
    if live is None:
        return Decision(True, "first_version", f"{RULES['first_version']}; {naive_text}"
                        + ("" if beats_naive or not scored else ": it does NOT beat seasonal naive"), figures)
    same = compare_same_days(candidate, live, features)  # recorded whatever decides
    figures |= {"live_version": live.version, **{f"same_days_{k}": v for k, v in same.items()}}
    if scored and not beats_naive:
        return Decision(False, "seasonal_naive", f"does not beat seasonal naive: {naive_text}", figures)
    if candidate.store_id in policy.approval_stores:
        return Decision(False, "approval_required", RULES["approval_required"], figures)
    left = _days_left(live, candidate)
    if left is not None:
        figures["live_days_left"] = left
        if left < policy.min_serving_days:
            return Decision(True, "live_expired", f"live {live.version} can serve {left} more days (need "
                            f"{policy.min_serving_days}): replaced; {naive_text}", figures)
    if same["days"] < policy.min_compare_days or same.get("wape_live") is None \
            or not np.isfinite(same["wape_live"]) or not np.isfinite(same["wape_candidate"]):
        return Decision(True, "not_comparable",
                        f"{same['days']} shared held-out days with live {live.version} (need "
                        f"{policy.min_compare_days}): live because it beats seasonal naive ({naive_text})"
                        if scored else f"{RULES['not_comparable']}; {naive_text}: live", figures)
    limit = same["wape_live"] * (1 + policy.tolerance)
    text = (f"WAPE {_fmt(same['wape_candidate'])} against live {live.version}'s {_fmt(same['wape_live'])} on the "
            f"same {same['days']} held-out days ({same['first_day']}..{same['last_day']}, {same['items']} items)")
    if same["wape_candidate"] > limit:
        return Decision(False, "same_days", f"worse than the live version beyond {policy.tolerance:.0%}: {text}",
                        figures)
    return Decision(True, "same_days", f"{text}; {naive_text}", figures)
