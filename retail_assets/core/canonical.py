"""Canonical JSON: the one serializer for manifests, pointers and baseline states, so identical content is
identical bytes (and identical SHA-256)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, no NaN): byte-identical for identical content."""
    def clean(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return clean(float(v))
        return v
    return json.dumps(clean(obj), sort_keys=True, indent=1)
