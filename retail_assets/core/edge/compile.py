"""Compile a store's served models into one batched ONNX graph (float64) that reproduces the point forecast.

With MAP fits Prophet's forecast is closed form: a piecewise-linear (or flat) trend, plus Fourier,
holiday and regressor terms times beta, additive ones times y_scale, multiplicative ones scaling the trend.
No public exporter does this (hummingbird converts the trend only), so we build the graph with onnx's helper
API from Prophet's own fitted attributes. Every other served model compiles into the same graph, so a device
runs every item of the store in one session call: the baselines (last week by weekday, a flat level);
statsforecast's models as their forecast path from the anchor date (constants over the bundle's horizon);
the store's LightGBM trees converted by onnxmltools (ai.onnx.ml TreeEnsembleRegressor; onnxmltools 1.16
writes its thresholds and leaves as float32, so the trees are the one float32 step, cast back to float64);
and combinations as the weighted sum of their parts. Each item's output is sum_m w[i, m] * max(part_m, 0).

Graph inputs (T forecast days, H holiday names of the store, I items):
  t_days  [T]     float64  days since 1970-01-01 of each forecast date
  holiday [T, H]  float64  1 where that date is holiday h shifted by its window offset (from the calendar)
  promo   [I, T]  float64  planned promotion flag per item
  open    [T]     float64  1 when the store trades that day
  calendar [T, K] float64  the LightGBM calendar features and holiday flag (gbm.calendar_inputs); only in a
                           graph where an item serves the store's trees
Output:
  yhat    [I, T]  float64  never negative, 0 on closed days
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from retail_assets.core.forecast import gbm

OPSET = 17
TREE_OPSET = 15  # the newest opset onnxmltools 1.16's LightGBM converter writes
NS_PER_DAY = 86400 * 10**9
_SEASONAL_COL = re.compile(r"^(?P<name>.+)_delim_(?P<i>\d+)$")
_HOLIDAY_COL = re.compile(r"^(?P<name>.+)_delim_(?P<offset>[+-]\d+)$")  # holiday name, day offset in its window
NO_HOLIDAY = ("__none__", 0)  # a column that is never set, so the holiday input is never empty


@dataclass
class CompiledStore:
    onnx_bytes: bytes
    items: list[str]
    holidays: list[tuple[str, int]]  # (holiday name, day offset) per column of the holiday input
    champions: dict[str, str]
    tree_items: frozenset[str] = frozenset()  # items whose forecast goes through the float32 trees


def _prophet_terms(model) -> dict:
    """Everything the graph needs from one fitted Prophet model, read through Prophet's own feature maker."""
    import pandas as pd

    probe = pd.DataFrame({"ds": [model.history["ds"].max()]})
    for name in model.extra_regressors:
        probe[name] = 0.0
    probe = model.setup_dataframe(probe)
    features, _prior, component_cols, _modes = model.make_all_seasonality_features(probe)
    beta = np.asarray(model.params["beta"], dtype=float).mean(axis=0)
    add_mask = component_cols["additive_terms"].to_numpy(float)
    mult_mask = component_cols["multiplicative_terms"].to_numpy(float)
    terms = {"fourier": [], "holiday": {}, "regressor": {}}
    for j, col in enumerate(features.columns):
        ba, bm = beta[j] * add_mask[j], beta[j] * mult_mask[j]
        m = _SEASONAL_COL.match(col)
        if m and m.group("name") in model.seasonalities:
            period = float(model.seasonalities[m.group("name")]["period"])
            i = int(m.group("i")) - 1
            order = i // 2 + 1
            terms["fourier"].append((2.0 * np.pi * order / period, "sin" if i % 2 == 0 else "cos", ba, bm))
        elif col in model.extra_regressors:
            props = model.extra_regressors[col]
            terms["regressor"][col] = (float(props["mu"]), float(props["std"]), ba, bm)
        else:
            h = _HOLIDAY_COL.match(col)
            if not h:
                raise ValueError(f"unexpected Prophet feature column {col!r}")
            terms["holiday"][(h.group("name"), int(h.group("offset")))] = (ba, bm)
    start_ns = pd.Timestamp(model.start).value
    t_scale_ns = pd.Timedelta(model.t_scale).value
    terms.update(
        growth=model.growth,
        a=NS_PER_DAY / t_scale_ns, b=-start_ns / t_scale_ns,
        k=float(np.nanmean(model.params["k"])), m=float(np.nanmean(model.params["m"])),
        delta=np.asarray(np.nanmean(model.params["delta"], axis=0), dtype=float).ravel(),
        cp=np.asarray(model.changepoints_t if model.changepoints_t is not None else [], dtype=float).ravel(),
        y_scale=float(model.y_scale),
        floor=float(model.y_min) if model.scaling == "minmax" else 0.0,
    )
    if model.growth == "flat":
        terms["k"], terms["delta"] = 0.0, np.zeros_like(terms["delta"])
    if model.growth == "logistic":
        raise ValueError("logistic growth is not supported on the edge (no capacity input)")
    return terms


def _gbm_nodes(N, trees: list[tuple[onnx.ModelProto, str, bool]], temperature_factor: bool = False) -> list:
    """The store's LightGBM models on each item-day. `trees`: (graph from `_tree_graph`, its name prefix, whether
    it reads the temperature), the plain trees first (`gbm_`), the weather trees (`gbmw_`) second where items
    serve both, each item's ratio then taken from its own model by the 0/1 constant `weather_trees`. Features
    assembled in FEATURES order, and for a model that reads it the day's temperature (the graph input
    `temperature`, degC per day) and its anomaly against the level window's mean, last; the ratio clipped at 0
    and scaled by the level + 1. With `temperature_factor` the units are multiplied by exp(slope x anomaly) with
    each item's `temp_slope` (0 for an item the plain trees serve)."""
    if not trees:
        return [N("Mul", ["zeros_IT", "zero"], ["gbm_yhat"])]
    reads = any(r for _g, _p, r in trees)
    temperature = [  # temp_row: the `temperature` input as [1, T] (compile_store adds it)
        # against the level window's mean temperature (a stored path, like the level): the anomaly
        N("GatherElements", ["window_temperature_path", "steps"], ["gbm_window_temp"], axis=1),
        *([N("Unsqueeze", ["temp_row", "axes2"], ["temp3_1"]),
           N("Add", ["temp3_1", "zeros_IT1"], ["temp3"]),                    # [I, T, 1]
           N("Unsqueeze", ["gbm_window_temp", "axes2"], ["window_temp3"]),
           N("Sub", ["temp3", "window_temp3"], ["anomaly3"])] if reads else []),
    ] if reads or temperature_factor else []
    models = []
    for graph, prefix, reads_temperature in trees:
        models += [
            N("Concat", ["gbm_base3", "temp3", "anomaly3"], [f"{prefix}x3"], axis=2) if reads_temperature
            else N("Identity", ["gbm_base3"], [f"{prefix}x3"]),
            N("Reshape", [f"{prefix}x3", f"{prefix}shape"], [f"{prefix}X"]),
            *graph.graph.node,
            N("Cast", [f"{prefix}variable"], [f"{prefix}ratio_col"], to=TensorProto.DOUBLE),
            N("Reshape", [f"{prefix}ratio_col", "shape_IT"], [f"{prefix}model_ratio"]),
        ]
    first, *rest = [prefix for _g, prefix, _r in trees]
    pick = [N("Sub", [f"{rest[0]}model_ratio", f"{first}model_ratio"], ["gbm_ratio_gap"]),  # each item's own
            N("Mul", ["gbm_ratio_gap", "weather_trees"], ["gbm_ratio_shift"]),
            N("Add", [f"{first}model_ratio", "gbm_ratio_shift"], ["gbm_ratio"])] if rest else [
        N("Identity", [f"{first}model_ratio"], ["gbm_ratio"])]
    return [
        N("Unsqueeze", ["zeros_IT", "axes2"], ["zeros_IT1"]),                # [I, T, 1]
        *temperature,
        N("Unsqueeze", ["calendar", "axes0"], ["cal3"]),                     # [1, T, K]
        N("Add", ["cal3", "zeros_IT1"], ["cal_b"]), N("Add", ["item_code", "zeros_IT1"], ["code_b"]),
        N("Unsqueeze", ["promo", "axes2"], ["promo3"]), N("Unsqueeze", ["gbm_level", "axes2"], ["level3"]),
        N("GatherElements", ["last_year_path", "steps"], ["gbm_last_year"], axis=1),
        N("Unsqueeze", ["gbm_last_year", "axes2"], ["last_year3"]),
        N("Concat", ["code_b", "cal_b", "promo3", "level3", "last_year3"], ["gbm_base3"], axis=2),
        *models,
        *pick,
        N("Max", ["gbm_ratio", "zero"], ["gbm_ratio_pos"]),
        N("Add", ["gbm_level", "one"], ["level_p1"]),
        *([N("Mul", ["gbm_ratio_pos", "level_p1"], ["gbm_yhat_normal"]),
           # times exp(slope x anomaly): the item's log-linear temperature response (gbm.temperature_slopes)
           N("Sub", ["temp_row", "gbm_window_temp"], ["anomaly2"]), N("Mul", ["anomaly2", "temp_slope"], ["log_factor"]),
           N("Exp", ["log_factor"], ["temp_factor"]), N("Mul", ["gbm_yhat_normal", "temp_factor"], ["gbm_yhat"])]
          if temperature_factor else [N("Mul", ["gbm_ratio_pos", "level_p1"], ["gbm_yhat"])]),
    ]


def _tree_graph(booster_text: str, prefix: str = "gbm_") -> onnx.ModelProto:
    """The booster as ONNX by onnxmltools, every name prefixed `prefix` (input gbm_X, output gbm_variable)."""
    from onnx import compose
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import DoubleTensorType

    booster = gbm.booster_from_text(booster_text)
    converted = convert_lightgbm(booster, target_opset=TREE_OPSET,
                                 initial_types=[("X", DoubleTensorType([None, booster.num_feature()]))])
    return compose.add_prefix(converted, prefix)


def _parts(champion: str, artifact: str) -> dict[str, tuple[float, str]]:
    """model -> (weight, artifact) of what an item serves: itself, or a combination's weighted parts."""
    if champion != "combination":
        return {champion: (1.0, artifact)}
    state = json.loads(artifact)
    return {m: (float(w), state["parts"][m]) for m, w in state["weights"].items()}


def compile_store(items: dict[str, dict], boosters: dict[str, str] | None = None) -> CompiledStore:
    """`items`: item_id -> {"champion": name, "artifact": its served artifact text}; `boosters`: the store's
    LightGBM models (LightGBM text format) by file (gbm.TREE_FILES), when an item serves one: each item's
    artifact names its file."""
    boosters = boosters or {}
    from prophet.serialize import model_from_json

    ids = sorted(items)
    n = len(ids)
    parts = {item: _parts(items[item]["champion"], items[item]["artifact"]) for item in ids}
    parsed = {}
    for item in ids:
        if "prophet" in parts[item]:
            parsed[item] = _prophet_terms(model_from_json(parts[item]["prophet"][1]))
    # the store-wide feature sets: union of frequencies and holiday names over its Prophet models
    freqs = sorted({round(w, 15) for t in parsed.values() for w, _f, _a, _m in t["fourier"]}) or [0.0]
    holidays = sorted({h for t in parsed.values() for h in t["holiday"]}) or [NO_HOLIDAY]
    n_cp = max([len(t["cp"]) for t in parsed.values()] + [1])
    F, H = len(freqs), len(holidays)
    fidx = {w: j for j, w in enumerate(freqs)}
    hidx = {h: j for j, h in enumerate(holidays)}

    a = np.zeros((n, 1)); b = np.zeros((n, 1)); k = np.zeros((n, 1)); m = np.zeros((n, 1))  # noqa: E702
    cp = np.full((n, n_cp), 1e12); delta = np.zeros((n, n_cp))
    y_scale = np.ones((n, 1)); floor = np.zeros((n, 1))
    sin_add = np.zeros((F, n)); cos_add = np.zeros((F, n)); sin_mult = np.zeros((F, n)); cos_mult = np.zeros((F, n))
    h_add = np.zeros((H, n)); h_mult = np.zeros((H, n))
    p_mu = np.zeros((n, 1)); p_std = np.ones((n, 1)); p_add = np.zeros((n, 1)); p_mult = np.zeros((n, 1))
    week = np.zeros((n, 7)); anchor = np.zeros((n, 1)); level = np.zeros((n, 1))

    states = {(item, model): json.loads(text) for item, item_parts in parts.items()
              for model, (_weight, text) in item_parts.items() if model != "prophet"}
    # the longest stored path (a classic model's forecast, the trees' level inputs): the graph's path width
    horizon = max([len(st.get("path", st.get("level_path", []))) for st in states.values()] + [1])
    w = {m: np.zeros((n, 1)) for m in ("prophet", "naive", "flat", "gbm")}
    path = np.zeros((n, horizon)); level_path = np.zeros((n, horizon)); item_code = np.zeros((n, 1, 1))
    last_year_path = np.zeros((n, horizon)); window_temperature_path = np.zeros((n, horizon))  # noqa: E702
    temp_slope = np.zeros((n, 1)); adj_slope = np.zeros((n, 1)); tree_file = [""] * n  # noqa: E702
    for i, item in enumerate(ids):
        adj_slope[i] = items[item].get("temperature_slope") or 0.0
        for model, (weight, artifact) in parts[item].items():
            if model == "prophet":
                t = parsed[item]
                w["prophet"][i] = weight
                a[i], b[i], k[i], m[i] = t["a"], t["b"], t["k"], t["m"]
                cp[i, : len(t["cp"])] = t["cp"]
                delta[i, : len(t["delta"])] = t["delta"]
                y_scale[i], floor[i] = t["y_scale"], t["floor"]
                for freq, fun, ba, bm in t["fourier"]:
                    j = fidx[round(freq, 15)]
                    (sin_add if fun == "sin" else cos_add)[j, i] += ba
                    (sin_mult if fun == "sin" else cos_mult)[j, i] += bm
                for h, (ba, bm) in t["holiday"].items():
                    h_add[hidx[h], i], h_mult[hidx[h], i] = ba, bm
                if "promo" in t["regressor"]:
                    p_mu[i], p_std[i], p_add[i], p_mult[i] = t["regressor"]["promo"]
                for name in t["regressor"]:
                    if name != "promo":
                        raise ValueError(f"{item}: regressor {name!r} has no edge input")
                continue
            state = states[(item, model)]
            anchor[i] = (np.datetime64(state["anchor_date"]) - np.datetime64("1970-01-01")).astype(int)
            if model == "seasonal_naive":
                w["naive"][i] = weight
                week[i] = state["last_week"]
            elif model == "moving_average":
                w["flat"][i] = weight
                level[i] = state["moving_average_level"]
            elif model == "lightgbm":
                tree_file[i] = state.get("booster_file", gbm.TREE_FILES["plain"])
                if tree_file[i] not in boosters:
                    raise ValueError(f"{item} serves the store's LightGBM model {tree_file[i]} but it was not given")
                w["gbm"][i] = weight
                item_code[i] = state["item_code"]
                level_path[i, : len(state["level_path"])] = state["level_path"]
                last_year_path[i, : len(state["last_year_path"])] = state["last_year_path"]
                window = state.get("window_temperature_path", [])
                window_temperature_path[i, : len(window)] = window
                temp_slope[i] = state.get("temperature_slope", 0.0)
            else:  # a classic model: its path, weighted in (sums of paths are one path)
                path[i, : len(state["path"])] += weight * np.asarray(state["path"], dtype=float)

    consts = {
        "a": a, "b": b, "k": k, "m": m, "cp": cp[:, None, :], "delta": delta[:, None, :],
        "neg_cp_delta": (-cp * delta)[:, None, :], "y_scale": y_scale, "floor": floor,
        "freqs": np.array(freqs, dtype=float).reshape(1, F),
        "sin_add": sin_add, "cos_add": cos_add, "sin_mult": sin_mult, "cos_mult": cos_mult,
        "h_add": h_add, "h_mult": h_mult, "p_mu": p_mu, "p_std": p_std, "p_add": p_add, "p_mult": p_mult,
        "week": week, "anchor_plus_one": anchor + 1.0, "level": level, "seven": np.array(7.0),
        "zero": np.array(0.0), "one": np.array(1.0), "axes2": np.array([2], dtype=np.int64),
        "axes1": np.array([1], dtype=np.int64), "axes0": np.array([0], dtype=np.int64),
        "w_prophet": w["prophet"], "w_naive": w["naive"], "w_flat": w["flat"], "w_gbm": w["gbm"],
        "path": path, "level_path": level_path, "last_year_path": last_year_path, "item_code": item_code, "path_last": np.array(horizon - 1.0),
        "shape_IT": np.array([n, -1], dtype=np.int64),
    }
    # the models items serve: plain trees first (gbm_), the weather trees (gbmw_) where items serve both
    files = sorted({tree_file[i] for i in range(n) if w["gbm"][i, 0]}, key=lambda f: f != gbm.TREE_FILES["plain"])
    with_trees = bool(files)
    trees = []
    for f, prefix in zip(files, ("gbm_", "gbmw_")):
        # each booster's own features: FEATURES, and the temperature and its anomaly last for the weather trees
        # (and a booster trained before session 12, whose shared trees read them)
        names = tuple(gbm.booster_from_text(boosters[f]).feature_name())
        temperature = (gbm.TEMPERATURE, gbm.TEMPERATURE_ANOMALY)
        reads = names[-2:] == temperature
        if names not in (gbm.FEATURES, (*gbm.FEATURES, *temperature)):
            raise ValueError(f"{f} reads features {names}, which the edge graph does not assemble")
        trees.append((_tree_graph(boosters[f], prefix), prefix, reads))
        consts[f"{prefix}shape"] = np.array([-1, len(names)], dtype=np.int64)
    if len(files) > 1:
        consts["weather_trees"] = np.array([[float(f == files[1])] for f in tree_file])
    with_temperature = with_trees and (any(r for _g, _p, r in trees) or bool(temp_slope.any()))
    if with_temperature:
        consts["window_temperature_path"] = window_temperature_path
        consts["temp_slope"] = temp_slope
    # every other model's forecast moved by the forecast temperature against climatology (store_models.py)
    adjusted = bool(adj_slope.any())
    if adjusted:
        consts["adj_slope"] = adj_slope
    weather_input = with_temperature or adjusted
    if not with_trees:  # no item serves the store's LightGBM model: no tree inputs in the graph
        for name in ("item_code", "shape_IT", "last_year_path"):
            consts.pop(name)
    initializers = [numpy_helper.from_array(np.asarray(v, dtype=np.int64 if v.dtype == np.int64 else np.float64), name)
                    for name, v in consts.items()]
    N = helper.make_node
    nodes = [
        # trend: t = a * t_days + b; piecewise linear through the changepoints
        N("Unsqueeze", ["t_days", "axes0"], ["t_row"]),                      # [1, T]
        N("Mul", ["a", "t_row"], ["at"]), N("Add", ["at", "b"], ["t"]),      # [I, T]
        N("Unsqueeze", ["t", "axes2"], ["t3"]),                              # [I, T, 1]
        N("GreaterOrEqual", ["t3", "cp"], ["past_cp"]),                      # [I, T, C]
        N("Cast", ["past_cp"], ["ind"], to=TensorProto.DOUBLE),
        N("Mul", ["ind", "delta"], ["ind_delta"]),
        N("ReduceSum", ["ind_delta", "axes2"], ["k_adj"], keepdims=0),
        N("Mul", ["ind", "neg_cp_delta"], ["ind_gamma"]),
        N("ReduceSum", ["ind_gamma", "axes2"], ["m_adj"], keepdims=0),
        N("Add", ["k", "k_adj"], ["k_t"]), N("Add", ["m", "m_adj"], ["m_t"]),
        N("Mul", ["k_t", "t"], ["kt_t"]), N("Add", ["kt_t", "m_t"], ["trend_scaled"]),
        N("Mul", ["trend_scaled", "y_scale"], ["trend_y"]), N("Add", ["trend_y", "floor"], ["trend"]),
        # Fourier terms on days since the epoch, as Prophet's fourier_series
        N("Unsqueeze", ["t_days", "axes1"], ["t_col"]),                      # [T, 1]
        N("Mul", ["t_col", "freqs"], ["angle"]),                             # [T, F]
        N("Sin", ["angle"], ["sin"]), N("Cos", ["angle"], ["cos"]),
        N("MatMul", ["sin", "sin_add"], ["sa"]), N("MatMul", ["cos", "cos_add"], ["ca"]),
        N("MatMul", ["sin", "sin_mult"], ["sm"]), N("MatMul", ["cos", "cos_mult"], ["cm"]),
        N("MatMul", ["holiday", "h_add"], ["ha"]), N("MatMul", ["holiday", "h_mult"], ["hm"]),
        N("Add", ["sa", "ca"], ["seas_add"]), N("Add", ["seas_add", "ha"], ["add_T"]),        # [T, I]
        N("Add", ["sm", "cm"], ["seas_mult"]), N("Add", ["seas_mult", "hm"], ["mult_T"]),
        N("Transpose", ["add_T"], ["add_IT"], perm=[1, 0]), N("Transpose", ["mult_T"], ["mult_IT"], perm=[1, 0]),
        # the promotion regressor, standardized as in training
        N("Sub", ["promo", "p_mu"], ["promo_c"]), N("Div", ["promo_c", "p_std"], ["promo_s"]),
        N("Mul", ["promo_s", "p_add"], ["pa"]), N("Mul", ["promo_s", "p_mult"], ["pm"]),
        N("Add", ["add_IT", "pa"], ["additive_scaled"]), N("Mul", ["additive_scaled", "y_scale"], ["additive"]),
        N("Add", ["mult_IT", "pm"], ["multiplicative"]),
        N("Add", ["one", "multiplicative"], ["mult_factor"]),
        N("Mul", ["trend", "mult_factor"], ["trend_mult"]), N("Add", ["trend_mult", "additive"], ["prophet_yhat"]),
        # baselines: last week again (by weekday), or a flat level
        N("Sub", ["t_row", "anchor_plus_one"], ["since_anchor"]),
        N("Mod", ["since_anchor", "seven"], ["weekday_f"], fmod=1),
        N("Add", ["weekday_f", "seven"], ["weekday_pos"]), N("Mod", ["weekday_pos", "seven"], ["weekday_w"], fmod=1),
        N("Cast", ["weekday_w"], ["weekday"], to=TensorProto.INT64),
        N("GatherElements", ["week", "weekday"], ["naive"], axis=1),
        N("Mul", ["level", "t_row"], ["level_t0"]), N("Mul", ["level_t0", "zero"], ["zeros_IT"]),
        N("Add", ["zeros_IT", "level"], ["flat"]),
        # stored paths (classic models, the LightGBM level) at each day's steps after the anchor
        N("Clip", ["since_anchor", "zero", "path_last"], ["steps_f"]),
        N("Cast", ["steps_f"], ["steps"], to=TensorProto.INT64),
        N("GatherElements", ["path", "steps"], ["path_yhat"], axis=1),
        N("GatherElements", ["level_path", "steps"], ["gbm_level"], axis=1),
        *([N("Unsqueeze", ["temperature", "axes0"], ["temp_row"])] if weather_input else []),  # [1, T]
        *_gbm_nodes(N, trees, with_temperature),
        # each item's served mix: sum over parts of weight x max(part, 0)
        N("Max", ["prophet_yhat", "zero"], ["prophet_pos"]), N("Mul", ["prophet_pos", "w_prophet"], ["wp"]),
        N("Mul", ["naive", "w_naive"], ["wn"]), N("Mul", ["flat", "w_flat"], ["wf"]),
        N("Mul", ["gbm_yhat", "w_gbm"], ["wg"]),
        N("Add", ["wp", "wn"], ["s1"]), N("Add", ["s1", "wf"], ["s2"]), N("Add", ["s2", "path_yhat"], ["others"]),
        *([N("Unsqueeze", ["temperature_normal", "axes0"], ["normal_row"]),
           N("Sub", ["temp_row", "normal_row"], ["departure"]), N("Mul", ["departure", "adj_slope"], ["log_adj"]),
           N("Exp", ["log_adj"], ["adj_factor"]), N("Mul", ["others", "adj_factor"], ["others_w"])]
          if adjusted else [N("Identity", ["others"], ["others_w"])]),
        N("Add", ["others_w", "wg"], ["raw"]),
        N("Max", ["raw", "zero"], ["nonneg"]),
        N("Unsqueeze", ["open", "axes0"], ["open_row"]),
        N("Mul", ["nonneg", "open_row"], ["yhat"]),
    ]
    graph = helper.make_graph(
        nodes, "store_forecast",
        inputs=[
            helper.make_tensor_value_info("t_days", TensorProto.DOUBLE, ["T"]),
            helper.make_tensor_value_info("holiday", TensorProto.DOUBLE, ["T", H]),
            helper.make_tensor_value_info("promo", TensorProto.DOUBLE, [n, "T"]),
            helper.make_tensor_value_info("open", TensorProto.DOUBLE, ["T"]),
            *([helper.make_tensor_value_info("calendar", TensorProto.DOUBLE, ["T", len(gbm.CALENDAR_INPUTS)])]
              if trees else []),
            *([helper.make_tensor_value_info("temperature", TensorProto.DOUBLE, ["T"])] if weather_input else []),
            *([helper.make_tensor_value_info("temperature_normal", TensorProto.DOUBLE, ["T"])] if adjusted else []),
        ],
        outputs=[helper.make_tensor_value_info("yhat", TensorProto.DOUBLE, [n, "T"])],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    for tree_graph, _prefix, _reads in trees:
        graph.initializer.extend(tree_graph.graph.initializer)
    opsets += list({o.domain: o for t, _p, _r in trees for o in t.opset_import if o.domain not in ("", None)}.values())
    model = helper.make_model(graph, opset_imports=opsets, producer_name="retail_assets.edge_compile")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return CompiledStore(model.SerializeToString(), ids, holidays, {i: items[i]["champion"] for i in ids},
                         frozenset(ids[i] for i in range(n) if w["gbm"][i, 0] > 0))
