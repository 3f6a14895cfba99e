"""Putting a stored version live by hand (`retail rollback`, `retail promote`, the audit's rollback drill):
verified file by file, its edge bundle built and verified before anything changes, then the live pointer, the
audit line (who, when, why) and the bundle's registry line. Pure: no Dagster."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retail_assets.core.atomic import sha256_file
from retail_assets.core.registry import records as registry
from retail_assets.core.registry.versions import code_version, live_version


@dataclass
class Served:
    entry: dict  # the audit line
    bundle_version: str
    max_rel_error: float


def serve_version(layout, store: str, version: str, action: str, reason: str, signing_key,
                  extra: dict | None = None) -> Served:
    """Make `version` the store's live version; refused (RegistryError, BundleVerificationError) with nothing
    changed when a file does not match its hash or the bundle does not verify."""
    from retail_assets.core.edge.bundle import build_bundle

    from retail_assets.core.forecast.serving import last_servable_day, servable_features

    current = live_version(layout.models, store)
    target = registry.verify_version(layout.models, store, version)
    # an earlier version serves what is left of its own horizon (fewer days), never a day past it
    features = servable_features(target, pd.read_parquet(layout.features_file(store)))
    if not features["is_future"].any():
        raise registry.RegistryError(f"{version} can serve no day ahead (its horizon ended "
                                     f"{last_servable_day(target).date()}): retrain instead")
    # the bundle first: a version that cannot be published is not made live
    bundle = build_bundle(target, features, target.manifest["config"]["horizon"], signing_key, layout.bundles,
                          code_version())
    entry = registry.set_live(layout.models, target, action, reason, current.version if current else None, extra)
    registry.record_bundle(layout.models, store, bundle.manifest, bundle.path, sha256_file(bundle.path))
    return Served(entry, bundle.bundle_version, bundle.manifest["verification"]["max_rel_error"])
