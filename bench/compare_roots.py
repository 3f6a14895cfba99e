"""Compare the outputs of two data roots: are model versions, item artifacts, bundles and forecasts the same bytes?

    python bench/compare_roots.py ROOT_A ROOT_B

For a refactor that must not change behaviour: run the demo with each build into its own data root (the
same landing files, `RETAIL_CODE_VERSION` set to the same string for both, since the code version is part of
every model version), then compare. Prints one line per difference and a summary; exit 1 when any differ.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pandas as pd


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _identity(manifest: dict, code: str) -> str:
    """The model version's hash input (core/training.write_version), with the code version set to `code`."""
    from retail_assets.core.canonical import dumps

    items = {i: d["sha256"] for i, d in sorted(manifest["items"].items())}
    identity = dumps({"features": manifest["features_data_version"], "code": code, "config": manifest["config"],
                      "items": items, "calibration": manifest["calibration"]})
    return "v" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def fingerprint(root: Path) -> dict[str, str]:
    """Every output that must be byte-identical, keyed by what it is."""
    out: dict[str, str] = {}
    for live in sorted((root / "models").glob("store=*/live.json")):
        store = live.parent.name
        version = json.loads(live.read_text())["version"]
        out[f"{store} live model version"] = version
        manifest = json.loads((live.parent / version / "manifest.json").read_text())
        for name in sorted(manifest["files"]):
            out[f"{store} {name}"] = _sha(live.parent / version / name)
        out[f"{store} calibration"] = json.dumps(manifest["calibration"], sort_keys=True)
        # the version recomputed without its code-version label (what the version hashes besides the code)
        out[f"{store} model identity without code label"] = _identity(manifest, "-")
        out[f"{store} champions"] = json.dumps({i: d["champion"] for i, d in manifest["items"].items()}, sort_keys=True)
    for latest in sorted((root / "bundles").glob("store=*/latest.json")):
        meta = json.loads(latest.read_text())
        out[f"{latest.parent.name} bundle version"] = meta["bundle_version"]
        with zipfile.ZipFile(latest.parent / meta["file"]) as zf:
            for name, digest in sorted(json.loads(zf.read("manifest.json"))["files"].items()):
                out[f"{latest.parent.name} bundle {name}"] = digest
    for fc in sorted((root / "forecasts").glob("store=*/forecast.parquet")):
        out[f"{fc.parent.name} forecast.parquet"] = _sha(fc)
        values = pd.read_parquet(fc).drop(columns=["model_version"]).to_csv(index=False).encode()
        out[f"{fc.parent.name} forecast values (without the version column)"] = hashlib.sha256(values).hexdigest()
    for feat in sorted((root / "features").glob("store=*/features.parquet")):
        out[f"{feat.parent.name} features.parquet"] = _sha(feat)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = (fingerprint(Path(p)) for p in argv)
    keys = sorted(set(a) | set(b))
    differ = [k for k in keys if a.get(k) != b.get(k)]
    labels = ("live model version", "bundle version", "forecast.parquet")  # all carry the code version
    for k in differ:
        print(f"differs: {k}: {a.get(k, 'missing')[:20]} vs {b.get(k, 'missing')[:20]}")
    print(f"{len(keys) - len(differ)} of {len(keys)} outputs identical "
          f"({sum(k.endswith('live model version') for k in keys)} stores)")
    if differ and all(k.endswith(labels) for k in differ):
        print("every difference is a version string (or a file that embeds it): the two builds named their code "
              "differently; set the same RETAIL_CODE_VERSION for both to compare bytes")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
