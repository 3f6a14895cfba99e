"""The code location as an operator meets it: `dagster dev` (webserver + daemon) from the repo's workspace.yaml,
driven through the webserver's GraphQL API and looked at in headless Chromium.

A small generated zone is ingested by an `ingest_and_harmonize` run, a backfill of two store partitions of
`store_pipeline` is launched and run by the daemon, and the runs, partition materializations and the blocking
gate's results are checked through GraphQL; then Chromium (Debian's /usr/bin/chromium through playwright, never a
downloaded browser) opens the asset graph, the backfill's page and one store's `demand_model` partition with its
embedded forecast plot. Screenshots and the `dagster dev` log are kept in $RETAIL_TEST_ARTIFACTS
(default test-artifacts/e2e/).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets_tests.helpers import FAST_SETTINGS, SMALL

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCATION = "retail_assets"
PER_STORE_ASSETS = ["store_features", "demand_model", "demand_forecast", "store_inventory_cover", "edge_bundle"]
# one process per run instead of one per step: the same run worker, daemon and storage, far fewer imports
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
# declarative automation would queue extra runs (forecasts_view, model_registry) next to the backfill's
auto_materialize:
  enabled: false
  use_sensors: false
"""
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def artifacts_dir() -> Path:
    path = Path(os.environ.get("RETAIL_TEST_ARTIFACTS") or REPO / "test-artifacts" / "e2e")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_chromium() -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"headless Chromium is missing: {CHROMIUM} not found. Install Debian's chromium package with "
            "`make system-deps` (runs `apt-get install chromium`, with sudo when not root). The test drives that "
            "browser through playwright and never downloads one (do not run `playwright install`)."
        )


def _default_sigint() -> None:
    # `dagster dev` maps SIGTERM to its SIGINT handler; a shell that started pytest in the background hands
    # children an ignored SIGINT, which would make SIGTERM a no-op too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class DagsterDev:
    """`dagster dev` in its own process group; stop() ends it and everything it started (webserver, daemon,
    code server, run workers, Prophet's cmdstan), gracefully first, then with SIGKILL to the group."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env, self.port, self.log_path = env, port, log_path
        self.proc: subprocess.Popen | None = None
        self.seen: dict[int, psutil.Process] = {}

    def start(self) -> None:
        exe = Path(sys.executable).with_name("dagster")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dagster"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*cmd, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            process_group=0, preexec_fn=_default_sigint,
        )

    def track(self) -> None:
        """Remember every descendant seen, in case one leaves the process group."""
        if self.proc is None:
            return
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _group(self) -> list[psutil.Process]:
        members = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == self.proc.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    members.append(proc)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        return members

    def stop(self) -> list[str]:
        """Returns what is still running afterwards (nothing, or the test fails)."""
        if self.proc is None:
            return []
        self.track()
        pgid = self.proc.pid  # process_group=0: the group is named after dagster dev's pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # run workers, cmdstan, anything that outlived the shutdown
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        stray = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
                    stray.append(proc)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(stray, timeout=10)
        self._log.close()
        left = {p.pid: p for p in self._group()}
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left[proc.pid] = proc
            except psutil.NoSuchProcess:
                pass
        out = []
        for pid, proc in left.items():
            try:
                out.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        return out


class Api:
    """The webserver's GraphQL API through dagster-graphql's client. The client (1.13.27) has helpers for
    launching a job and reading a run's status but none for backfills or arbitrary queries, so those go
    through its underlying `_execute` (the gql transport every helper uses)."""

    def __init__(self, port: int) -> None:
        from dagster_graphql import DagsterGraphQLClient

        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)

    def __call__(self, query: str, **variables) -> dict:
        return self.client._execute(query, variables or None)

    def run_errors(self, run_id: str) -> str:
        data = self("""query($runId: ID!) { runOrError(runId: $runId) { __typename
            ... on Run { status eventConnection(afterCursor: null) { events { __typename
                ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } } }""", runId=run_id)
        run = data["runOrError"]
        if run["__typename"] != "Run":
            return str(run)
        errors = [f"{e['__typename']}: {e.get('message', '')}\n{(e.get('error') or {}).get('message', '')}"
                  for e in run["eventConnection"]["events"] if e.get("error")]
        return f"run {run_id} {run['status']}:\n" + "\n".join(errors)[-6000:]

    def wait_run(self, run_id: str, timeout: float, server: DagsterDev) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.client.get_run_status(run_id).value
            server.track()
            if status in TERMINAL_RUN:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} still {status} after {timeout:.0f}s\n{server.log_tail()}")
            time.sleep(2)
        assert status == "SUCCESS", self.run_errors(run_id)


WORKSPACE_QUERY = """{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
    ... on PythonError { message } } }"""

BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
    ... on PartitionBackfill { id status numPartitions partitionNames partitionSetName title
        error { message }
        partitionStatusCounts { runStatus count }
        runs { runId status tags { key value } } }
    ... on Error { message } } }"""

LATEST_BY_PARTITION = """query($key: AssetKeyInput!, $partitions: [String!]) {
    assetNodeOrError(assetKey: $key) { __typename
        ... on AssetNode { partitionKeys
            latestMaterializationByPartition(partitions: $partitions) { partition runId
                metadataEntries { label __typename ... on MarkdownMetadataEntry { mdStr } } } } } }"""

CHECK_EXECUTIONS = """query($key: AssetKeyInput!, $check: String!, $partition: String) {
    assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 5) {
        runId status partition evaluation { success severity partition } } }"""


def wait_for_location(api: Api, server: DagsterDev, timeout: float = 240) -> None:
    from dagster_graphql import DagsterGraphQLClientError

    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.proc.returncode}:\n{server.log_tail()}")
        server.track()
        try:
            workspace = api(WORKSPACE_QUERY)["workspaceOrError"]
        except DagsterGraphQLClientError as exc:  # webserver not listening yet
            last = str(exc).splitlines()[0]
            time.sleep(1)
            continue
        entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
        entry = entries.get(LOCATION)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "RepositoryLocation":
                return
            pytest.fail(f"code location {LOCATION} failed to load: {loaded.get('message')}\n{server.log_tail()}")
        last = json.dumps(workspace)[:300]
        time.sleep(1)
    pytest.fail(f"webserver/code location not ready after {timeout:.0f}s ({last})\n{server.log_tail()}")


@pytest.fixture()
def dagster_dev(tmp_path):
    require_chromium()  # fail before minutes of setup, with the install hint
    data_dir = tmp_path / "data"
    generate_landing_zone(data_dir / "landing", SMALL)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    bin_dir = str(Path(sys.executable).parent)  # dbt and dagster beside this interpreter, venv active or not
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "RETAIL_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        # 75 days of history: short folds and gates, one fit process per run (the machine has 2 cores)
        "RETAIL_FORECAST_SETTINGS": json.dumps(FAST_SETTINGS),
        # the sensors and schedules start stopped here: this test launches its own runs and backfill
        "RETAIL_AUTOMATION": "off",
    }
    out = artifacts_dir()
    server = DagsterDev(env, free_port(), out / "dagster_dev.log")
    try:
        server.start()
        api = Api(server.port)
        wait_for_location(api, server)
        yield server, api, out
    finally:
        left = server.stop()
        assert not left, f"processes left running after stopping dagster dev: {left}"


def test_backfill_through_webserver_and_ui(dagster_dev):
    server, api, out = dagster_dev
    t0 = time.monotonic()

    # 1. ingest, so the `stores` dynamic partitions exist (store_registry adds them)
    run_id = api.client.submit_job_execution("ingest_and_harmonize", run_config=IN_PROCESS)
    api.wait_run(run_id, timeout=300, server=server)
    node = api(LATEST_BY_PARTITION, key={"path": ["demand_model"]}, partitions=[])["assetNodeOrError"]
    all_stores = sorted(node["partitionKeys"])
    assert len(all_stores) == SMALL.stores, all_stores
    stores = all_stores[:2]  # two runs are the daemon's backfill as well as three
    t_ingest = time.monotonic()

    # 2. a backfill of two store partitions of `store_pipeline`, run by the daemon
    repos = api("""{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
        partitionSets { name pipelineName } } } } }""")["repositoriesOrError"]["nodes"]
    (repo,) = [r for r in repos if r["location"]["name"] == LOCATION]
    (partition_set,) = [p["name"] for p in repo["partitionSets"] if p["pipelineName"] == "store_pipeline"]
    launched = api("""mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
        __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message }
        ... on PythonError { stack } ... on RunConfigValidationInvalid { errors { message } } } }""",
                   params={
                       "selector": {"partitionSetName": partition_set,
                                    "repositorySelector": {"repositoryName": repo["name"],
                                                           "repositoryLocationName": LOCATION}},
                       "partitionNames": stores,  # store_pipeline runs its steps in process by definition
                       "title": "e2e: two stores",
                   })["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 480

    def poll(done) -> dict:
        while True:
            backfill = api(BACKFILL_QUERY, id=backfill_id)["partitionBackfillOrError"]
            server.track()
            if done(backfill):
                return backfill
            if backfill["__typename"] != "PartitionBackfill" or time.monotonic() > deadline:
                pytest.fail(f"backfill {backfill_id} not done: {json.dumps(backfill)[:2000]}\n{server.log_tail()}")
            time.sleep(2)

    # the runs first: the daemon marks the backfill itself complete on its next tick (every 30 s), which the
    # GraphQL checks and the first pages in the browser do not need to wait for
    backfill = poll(lambda b: len(b.get("runs") or []) == len(stores)
                    and all(r["status"] in TERMINAL_RUN for r in b["runs"]))
    runs = backfill["runs"]
    failed = [api.run_errors(r["runId"]) for r in runs if r["status"] != "SUCCESS"]
    assert not failed, "\n\n".join(failed)

    def backfill_completed() -> None:
        done = poll(lambda b: b.get("status") in TERMINAL_BACKFILL)
        assert done["status"] == "COMPLETED_SUCCESS", done
        assert sorted(done["partitionNames"]) == stores and done["numPartitions"] == 2
        assert done["partitionStatusCounts"] == [{"runStatus": "SUCCESS", "count": 2}]
    run_by_store = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition"): r["runId"] for r in runs}
    assert sorted(run_by_store) == stores
    assert all({"key": "dagster/backfill", "value": backfill_id} in r["tags"] for r in runs)
    t_backfill = time.monotonic()

    # 3. through GraphQL: every per-store asset materialized by that store's backfill run, nothing elsewhere
    for asset in PER_STORE_ASSETS:
        node = api(LATEST_BY_PARTITION, key={"path": [asset]}, partitions=all_stores)["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        latest = {m["partition"]: m for m in node["latestMaterializationByPartition"] if m}
        assert sorted(latest) == stores, (asset, sorted(latest))
        for store in stores:
            assert latest[store]["runId"] == run_by_store[store], (asset, store)
        if asset == "demand_model":
            for store in stores:
                plots = [e["mdStr"] for e in latest[store]["metadataEntries"] if e["label"].startswith("plot_")]
                assert plots and all("](data:image/png;base64," in md for md in plots), store
    # ... and the blocking gate on store_features passed for each of those partitions, in that run
    for store in stores:
        executions = api(CHECK_EXECUTIONS, key={"path": ["store_features"]}, check="gx_store_features",
                         partition=store)["assetCheckExecutions"]
        assert executions, f"no gx_store_features execution for store {store}"
        latest = executions[0]
        assert latest["status"] == "SUCCEEDED" and latest["evaluation"]["success"], (store, latest)
        assert latest["partition"] == store and latest["runId"] == run_by_store[store]
        assert latest["evaluation"]["severity"] == "ERROR"

    # 4. what an operator sees, in headless Chromium
    browse(f"http://127.0.0.1:{server.port}", backfill_id, stores, out, backfill_completed)
    t_ui = time.monotonic()
    print(f"\ne2e ui: ingest {t_ingest - t0:.0f}s, backfill {t_backfill - t_ingest:.0f}s, "
          f"browser {t_ui - t_backfill:.0f}s; screenshots in {out}")


def browse(base: str, backfill_id: str, stores: list[str], out: Path, backfill_completed) -> None:
    """The asset graph and one store's model first, then (once `backfill_completed` has seen the daemon mark it
    complete) the backfill's pages."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(45_000)
        expect.set_options(timeout=45_000)
        try:
            # the asset graph, filtered to the per-store groups (the URL the selection box itself writes)
            selection = 'group:"stores" or group:"forecasting" or group:"edge"'
            page.goto(f"{base}/asset-groups~{urllib.parse.quote(selection)}/")
            expect(page.get_by_text("forecasting", exact=True).last).to_be_visible()
            page.locator("button:has([aria-label='settings'])").last.click()  # the graph's own settings
            page.get_by_role("menuitem", name="Expand all groups").click()
            page.keyboard.press("Escape")
            # (store_inventory_cover is drawn under a name shortened in its middle: its partitions are checked
            # through GraphQL above)
            for asset in ["store_registry", *(a for a in PER_STORE_ASSETS if len(a) < 20), "forecasts_view"]:
                expect(page.get_by_text(asset, exact=True).first).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=out / "ui_1_asset_graph.png")

            # one store's model: partition materialized, held-out accuracy table, forecast plot as an image
            store = stores[0]
            page.goto(f"{base}/assets/demand_model?view=partitions&partition={store}")
            body = page.locator("body")
            text = {"use_inner_text": True}
            expect(body).to_contain_text(re.compile(rf"\b{store}\s+Materialized\s+Latest materialization"), **text)
            expect(body).to_contain_text(re.compile(r"Materialized \(2\)\s+Materializing \(0\)\s+Missing \(2\)"),
                                         **text)
            expect(page.get_by_text("median WAPE per item")).to_be_visible()  # the `accuracy` markdown table
            row = page.locator("tr", has_text="plot_forecast_1")
            expect(row).to_be_visible()
            page.screenshot(path=out / "ui_4_demand_model_partition.png")
            row.get_by_text("[Show Markdown]").click()
            dialog = page.get_by_role("dialog")
            image = dialog.locator("img[src^='data:image/png;base64,']")
            expect(image).to_have_count(1)
            expect(image).to_be_visible()
            image.evaluate("img => img.decode()")  # throws when the PNG does not decode
            width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert width > 200 and height > 100, (width, height)
            assert (image.get_attribute("alt") or "").startswith("SKU-")  # "<item> (<champion>)"
            page.wait_for_timeout(500)  # the dialog fades in: let the screenshot show it settled
            page.screenshot(path=out / "ui_5_demand_model_plot.png")
            # the backfill: two partitions, succeeded, one successful run per store
            page.keyboard.press("Escape")
            backfill_completed()
            page.goto(f"{base}/runs/b/{backfill_id}")
            expect(body).to_contain_text(re.compile(r"Partition selection\s+2 partitions\s+Status\s+Succeeded"), **text)
            # the job row: targeted 2, in progress 0, succeeded 2, failed 0
            expect(body).to_contain_text(re.compile(r"store_pipeline\s+100% completed\s+2\s+0\s+2\s+0"), **text)
            page.screenshot(path=out / "ui_2_backfill.png")
            page.goto(f"{base}/runs/b/{backfill_id}?tab=runs")
            for store in stores:
                expect(page.get_by_text(f"partition: {store}", exact=True)).to_be_visible()
            expect(page.get_by_text("Success", exact=True)).to_have_count(2)
            page.screenshot(path=out / "ui_3_backfill_runs.png")

        except Exception:
            page.screenshot(path=out / "ui_failure.png", full_page=True)
            raise
        finally:
            browser.close()
