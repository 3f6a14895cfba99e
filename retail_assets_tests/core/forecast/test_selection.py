"""Selection: a regular item is served the store's best model (pooled over the store's items on the same
folds, seasonal naive included), whatever its own folds say; an intermittent item chooses among its own."""

from __future__ import annotations

from retail_assets.core.forecast.backtest import FoldForecast, ItemResult
from retail_assets.core.forecast.selection import choose_champion, store_best


def _fold(y, **yhat) -> FoldForecast:
    return FoldForecast(fold=0, kind="recent", dates=[f"2026-01-0{i + 1}" for i in range(len(y))], y=list(y),
                        open_day=[True] * len(y), yhat={m: list(v) for m, v in yhat.items()}, raw_lower=None,
                        raw_upper=None, scale=1.0)


def _item(item_id: str, fold: FoldForecast, served=("prophet", "ets", "seasonal_naive")) -> ItemResult:
    return ItemResult("0001", item_id, folds=[fold], future_yhat={m: [1.0] for m in served})


def test_a_regular_item_gets_the_store_best_model_and_its_own_best_is_in_the_reason():
    # the big item is forecast well by Prophet, the small one slightly better by ETS: pooled, Prophet wins
    big = _item("BIG", _fold([100, 100, 100], prophet=[101, 99, 100], ets=[120, 80, 100],
                             seasonal_naive=[90, 110, 100]))
    small = _item("SMALL", _fold([10, 10, 10], prophet=[12, 8, 10], ets=[11, 9, 10], seasonal_naive=[14, 6, 10]))
    default = store_best([big, small], lambda r: r.folds)
    assert default == "prophet"
    champion, reason, scores = choose_champion(small, small.folds, default=default)
    assert scores["ets"]["wape"] < scores["prophet"]["wape"]  # its own folds prefer ETS...
    assert champion == "prophet"  # ...the store's best model is served
    assert "store's best model" in reason and "ets" in reason
    # a store's best model the item cannot serve (no final fit) is not forced on it
    unserved = _item("SMALL", small.folds[0], served=("ets", "seasonal_naive"))
    assert choose_champion(unserved, unserved.folds, default=default)[0] == "ets"


def test_the_store_best_model_can_be_seasonal_naive():
    exact = _item("A", _fold([5, 9, 5], prophet=[6, 7, 6], ets=[7, 7, 7], seasonal_naive=[5, 9, 5]))
    assert store_best([exact], lambda r: r.folds) == "seasonal_naive"
    assert choose_champion(exact, exact.folds, default="seasonal_naive")[0] == "seasonal_naive"


def test_an_intermittent_item_keeps_its_own_choice():
    sparse = _item("SPARSE", _fold([0, 3, 0, 0], croston_sba=[0.7, 0.7, 0.7, 0.7], prophet=[0, 0, 0, 0],
                                   seasonal_naive=[3, 0, 0, 0]), served=("croston_sba", "prophet", "seasonal_naive"))
    sparse.intermittent = True
    champion, reason, _ = choose_champion(sparse, sparse.folds, default="prophet")
    assert champion == "croston_sba" and "intermittent" in reason
