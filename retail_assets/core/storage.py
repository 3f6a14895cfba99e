"""The object-store side of a data root on S3 or an S3-compatible server: the filesystem (s3fs through fsspec), how a
lost conditional put shows, and a DuckDB connection that reads and writes `s3://` without an extension. Pure: no
Dagster. The data root itself is worked on through local copies (core/mirror.py), whose puts are conditional on
the ETag each copy pulled (`If-Match`, or `If-None-Match: *` for a new object): S3 has no atomic rename.

Connection settings come from the environment: `RETAIL_S3_ENDPOINT_URL` (or `AWS_ENDPOINT_URL`) for an
S3-compatible server, credentials as boto3 reads them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), region
`AWS_DEFAULT_REGION` (default us-east-1). Nothing here downloads anything; DuckDB reads and writes `s3://` paths
through the same filesystem registered with the connection (`duckdb_connect`), never through its httpfs extension.
"""

from __future__ import annotations

import errno
import os

PRECONDITION_FAILED = "At least one of the pre-conditions you specified did not hold"
FIT_INPUTS_DIR = "fit_inputs"  # <root>/fit_inputs/<sha256>.json: a Dask fit's item histories (core/fitting/pool.py)


def is_url(root: str | os.PathLike) -> bool:
    """True for an object-store URL (`s3://bucket/prefix`); a local path is not one."""
    return "://" in str(root) and not str(root).startswith("file://")


def s3_options() -> dict:
    """s3fs options from the environment (module docstring)."""
    endpoint = os.environ.get("RETAIL_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {"client_kwargs": {"region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
                     "use_listings_cache": False, "skip_instance_cache": True}
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def filesystem(url: str):
    """(fsspec filesystem, path without the protocol) for an object-store URL."""
    from fsspec.core import url_to_fs

    if not is_url(url):
        raise ValueError(f"{url!r} is not an object-store URL (s3://bucket/prefix)")
    return url_to_fs(url, **(s3_options() if url.startswith("s3://") else {}))


def lost_race(exc: BaseException) -> bool:
    """Whether a failed put lost a race (412): s3fs raises FileExistsError when the server names the failed
    condition, else OSError(EINVAL) with the precondition message (SeaweedFS names none)."""
    if isinstance(exc, FileExistsError):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL and PRECONDITION_FAILED in str(exc)


def duckdb_connect(fs=None, database: str = ":memory:", **kwargs):
    """A DuckDB connection that reads and writes `s3://` through `fs` (registered with it) and never loads or
    installs an extension on its own (a missed registration fails at once instead of downloading httpfs)."""
    import duckdb

    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, **kwargs.pop("config", {})}
    con = duckdb.connect(database, config=config, **kwargs)
    if fs is not None:
        con.register_filesystem(fs)
    return con
