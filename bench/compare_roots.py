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
from pathlib import Path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        out[f"{store} champions"] = json.dumps({i: d["champion"] for i, d in manifest["items"].items()}, sort_keys=True)
    for latest in sorted((root / "bundles").glob("store=*/latest.json")):
        meta = json.loads(latest.read_text())
        out[f"{latest.parent.name} bundle version"] = meta["bundle_version"]
    for fc in sorted((root / "forecasts").glob("store=*/forecast.parquet")):
        out[f"{fc.parent.name} forecast.parquet"] = _sha(fc)
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
    for k in differ:
        print(f"differs: {k}: {a.get(k, 'missing')[:20]} vs {b.get(k, 'missing')[:20]}")
    print(f"{len(keys) - len(differ)} of {len(keys)} outputs identical "
          f"({sum(k.endswith('live model version') for k in keys)} stores)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
