"""The landing zone's vocabulary: its sources, the folders and raw tables they map to, and the errors and
records the scan, the parser, the loader and the sensor's cursor share.

Kept apart so those modules agree on one definition of a source without importing each other.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from retail_assets.core.ingest.regions import POS_CONVENTIONS

REFERENCE_FILES = ("stores", "items", "holidays", "promotions", "fx_rates")
DEFAULT_ENCODING = "utf-8"


class LandingZoneError(ValueError):
    """The landing zone cannot be loaded at all (no landing folder, no usable reference file)."""


class FileRejected(Exception):
    """One landing file cannot be read as a whole; the message is the reason recorded for it."""


@dataclass(frozen=True)
class Source:
    """One kind of landing file and the raw table it loads into."""

    name: str
    table: str
    folder: str  # below the landing root
    suffix: str  # ".csv" or ".jsonl"
    recursive: bool = False  # files in sub-folders of `folder` too
    separator: str = ","

    @property
    def fmt(self) -> str:
        return self.suffix.lstrip(".")

    @property
    def pattern(self) -> str:
        return f"{self.folder}/{'**/' if self.recursive else ''}*{self.suffix}"


@dataclass(frozen=True)
class Rejection:
    source: str
    file: str
    reason: str
    sha256: str | None = None
    bytes: int | None = None


@dataclass
class LoadReport:
    files_seen: int = 0
    files_loaded: int = 0
    files_replaced: int = 0
    files_unchanged: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    malformed_rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def files_rejected(self) -> int:
        return len(self.rejected)


SOURCE_NAMES = tuple(f"pos_{r.lower()}" for r in POS_CONVENTIONS) + ("ecommerce", "iot", "weather", "telemetry",
                                                                       "reference")


def validate_encodings(encodings: Mapping[str, str] | None) -> dict[str, str]:
    """Per-source text encodings (e.g. {"pos_de": "cp1252"}); unknown sources or codecs are refused."""
    out = {}
    for source, name in (encodings or {}).items():
        if source not in SOURCE_NAMES:
            raise LandingZoneError(f"encoding set for unknown source {source!r}; sources: {', '.join(SOURCE_NAMES)}")
        try:
            out[source] = codecs.lookup(name).name
        except LookupError as exc:
            raise LandingZoneError(f"unknown encoding {name!r} for source {source}") from exc
    return out


def discover_sources(landing: Path) -> list[Source]:
    """Every documented source (a POS table per known region, empty when it sends nothing)."""
    if not landing.is_dir():
        raise LandingZoneError(f"landing zone {landing} does not exist; run `retail generate` or copy files there")
    sources = [Source(f"pos_{c.region.lower()}", f"raw_pos_{c.region.lower()}", f"pos/region={c.region}", ".csv",
                      separator=c.separator) for c in POS_CONVENTIONS.values()]
    sources.append(Source("ecommerce", "raw_ecommerce", "ecommerce", ".jsonl"))
    sources.append(Source("iot", "raw_iot", "iot", ".csv"))
    # issued weather forecasts per store or region (the temperature the forecast can know in advance)
    sources.append(Source("weather", "raw_weather", "weather", ".csv"))
    # edge devices' telemetry, one record per forecast, any folder depth (a shipper may group by store or host)
    sources.append(Source("telemetry", "raw_edge_telemetry", "telemetry", ".jsonl", recursive=True))
    return sources
