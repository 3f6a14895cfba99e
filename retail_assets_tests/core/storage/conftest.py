"""One real S3-compatible server (SeaweedFS on 127.0.0.1) per test module, its settings in the environment."""

from __future__ import annotations

import os

import pytest

from retail_assets_tests.s3server import seaweedfs


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
