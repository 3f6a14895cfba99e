"""The landing-zone generator: deterministic, in the documented regional conventions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets_tests.helpers import SMALL

TINY = dataclasses.replace(SMALL, stores=3, items=3, days=20)


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    generate_landing_zone(tmp_path / "a", TINY)
    generate_landing_zone(tmp_path / "b", TINY)
    a, b = _digest_tree(tmp_path / "a"), _digest_tree(tmp_path / "b")
    assert len(a) > 50
    assert a == b


def test_other_seed_gives_other_data(tmp_path):
    generate_landing_zone(tmp_path / "a", TINY)
    generate_landing_zone(tmp_path / "b", dataclasses.replace(TINY, seed=TINY.seed + 1))
    a, b = _digest_tree(tmp_path / "a"), _digest_tree(tmp_path / "b")
    assert a.keys() & b.keys()
    assert any(a[k] != b[k] for k in a.keys() & b.keys() if k.startswith("pos/"))


def test_regional_conventions(small_zone):
    root, _truth = small_zone
    landing = root / "landing"
    us = next((landing / "pos" / "region=US").glob("*.csv")).read_text().splitlines()
    uk = next((landing / "pos" / "region=UK").glob("*.csv")).read_text().splitlines()
    de = next((landing / "pos" / "region=DE").glob("*.csv")).read_text().splitlines()
    assert "qty" in us[0].split(",") and "color" in us[0].split(",")
    assert "quantity" in uk[0].split(",") and "colour" in uk[0].split(",")
    assert de[0].count(";") == 8 and "," not in de[0]
    price = de[1].split(";")[5]
    assert "," in price and "." not in price  # decimal comma
    order = json.loads((next((landing / "ecommerce").glob("*.jsonl"))).read_text().splitlines()[0])
    assert order["ordered_at"].endswith("Z")
    stores = (landing / "reference" / "stores.csv").read_text().splitlines()
    assert stores[0].split(",")[:6] == ["store_id", "region", "timezone", "currency", "opened_on", "climate_zone"]


def test_every_defect_class_is_injected_and_counted(small_zone):
    _root, truth = small_zone
    pos = truth["counts"]["pos"]
    for key in ("quarantine:negative_qty", "quarantine:absurd_qty", "quarantine:unknown_item",
                "quarantine:unknown_store", "quarantine:unparseable_timestamp",
                "quarantine:missing_required_column", "duplicate", "late_rows", "dst_ambiguous"):
        assert pos.get(key, 0) > 0, key
    ecom = truth["counts"]["ecommerce"]
    for key in ("quarantine:invalid_json", "quarantine:unknown_store", "quarantine:unparseable_timestamp"):
        assert ecom.get(key, 0) > 0, key


def test_clean_scenario_has_no_defects(tmp_path):
    truth = generate_landing_zone(tmp_path / "l", dataclasses.replace(TINY, scenario="clean"))
    assert not any(k.startswith("quarantine:") or k == "duplicate"
                   for c in truth["counts"].values() for k, v in c.items() if v)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="scenario"):
        GeneratorConfig(scenario="nope")
    with pytest.raises(ValueError, match="at least"):
        GeneratorConfig(days=3)
