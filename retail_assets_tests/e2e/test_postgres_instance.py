"""The shared-deployment instance (deploy/dagster.yaml) against a real PostgreSQL server.

A throwaway PostgreSQL (Debian's postgresql package, `make system-deps`) is started on 127.0.0.1 and a free port,
the repo's deploy/dagster.yaml is the instance config (DAGSTER_PG_* point it at that server), and a small zone
is ingested and two store partitions are trained through that instance. The runs, the `stores` partitions, the
partition materializations and the per-partition gate results must then be in Postgres: read back through a
second instance object and with plain SQL.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from retail_assets.core.demo.generator import generate_landing_zone
from retail_assets_tests.helpers import SMALL, run_store_pipeline

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
STORES = ["0001", "0002"]
PER_STORE_ASSETS = ["store_features", "demand_model", "demand_forecast", "store_inventory_cover", "edge_bundle"]
INSTALL_HINT = ("install Debian's postgresql package: `make system-deps` "
                "(or `sudo apt-get install -y postgresql`)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb (Debian keeps server binaries off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        pytest.fail(f"PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}")
    return Path(found[-1]).parent


class PostgresServer:
    """initdb + pg_ctl in a temp dir; as root the server runs as the `postgres` system user (initdb and
    postgres refuse to run as root). Listens on 127.0.0.1 only, its unix socket in the temp dir."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.port = free_port()
        self.superuser_password = secrets.token_hex(12)
        self.prefix: list[str] = []
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(f"running as root but there is no `postgres` system user to run the server: {INSTALL_HINT}")
            runuser = shutil.which("runuser")
            if not runuser:
                pytest.fail("running as root and `runuser` (util-linux) is missing: cannot start postgres as the "
                            "`postgres` user")
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="retail-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.root)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}")
        return proc

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if self.owner:
            for path in (self.root, pwfile):
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        pwfile.unlink()
        # throwaway server: durability off, it only has to be correct while it runs
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")
        self.started = True

    def connect(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                                password=self.superuser_password if password is None else password,
                                connect_timeout=10)

    def create_database(self, name: str, user: str, password: str) -> None:
        con = self.connect()
        con.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with con.cursor() as cur:
            cur.execute(f"create role {user} login password %s", (password,))
            cur.execute(f"create database {name} owner {user}")
        con.close()

    def stop(self) -> None:
        try:
            if self.started:
                try:
                    self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
                except Exception:
                    pidfile = self.data / "postmaster.pid"
                    if pidfile.exists():  # the postmaster takes its children down with it
                        os.kill(int(pidfile.read_text().split()[0]), 9)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture()
def postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_store_backfill_on_postgres_instance(postgres, tmp_path, monkeypatch):
    db, user, password = "dagster_e2e", "dagster", secrets.token_hex(12)
    postgres.create_database(db, user, password)

    # the deployment's own instance config, unchanged; it reads the server from DAGSTER_PG_*
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    for key, value in {"HOST": "127.0.0.1", "PORT": str(postgres.port), "USER": user, "PASSWORD": password,
                       "DB": db}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    data_dir = tmp_path / "data"
    generate_landing_zone(data_dir / "landing", SMALL)
    monkeypatch.setenv("RETAIL_DATA_DIR", str(data_dir))  # dbt's profile reads the warehouse path from it

    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from retail_assets.defs.harmonize.assets import dbt_models
    harmonized = dbt_models()
    from retail_assets.defs.harmonize.checks import warehouse_checks
    from retail_assets.defs.ingest.assets import raw_landing
    gx_demand_checks, gx_quarantine_rate = warehouse_checks()
    from retail_assets.resources import build_resources

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        ingest = dg.materialize([raw_landing, harmonized, gx_demand_checks, gx_quarantine_rate],
                                resources=build_resources(data_dir), instance=instance)
        assert ingest.success
        results = run_store_pipeline(data_dir, instance, only=STORES, fit_workers=1)
        assert {s: r.success for s, r in results.items()} == {s: True for s in STORES}
        store_run_ids = {s: r.run_id for s, r in results.items()}

    # a second instance, a new connection: everything above must have been stored in Postgres
    with dg.DagsterInstance.from_config(str(home)) as instance:
        all_stores = instance.get_dynamic_partitions("stores")
        assert set(STORES) < set(all_stores) and len(all_stores) == SMALL.stores
        for store, run_id in store_run_ids.items():
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags.get("dagster/partition") == store
        for asset in PER_STORE_ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(STORES), asset
        gate = dg.AssetCheckKey(dg.AssetKey("store_features"), "gx_store_features")
        records = instance.event_log_storage.get_asset_check_execution_history(gate, limit=20)
        latest = {}
        for record in records:  # newest first
            latest.setdefault(record.partition, record)
        assert set(latest) == set(STORES)
        for store, record in latest.items():
            assert record.status.value == "SUCCEEDED", (store, record.status)
            assert record.run_id == store_run_ids[store]
            assert record.event.asset_check_evaluation.passed

    # and with plain SQL, as the deployment's user, in the deployment's database
    con = postgres.connect(dbname=db, user=user, password=password)
    with con, con.cursor() as cur:
        cur.execute("select run_id, status, pipeline_name from runs")
        runs = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        assert len(runs) >= 5  # ingest, store registry, two stores, publish
        assert {runs[rid] for rid in store_run_ids.values()} == {("SUCCESS", "store_pipeline")}
        assert all(status == "SUCCESS" for status, _ in runs.values()), runs
        cur.execute("select asset_key, partition, run_id from event_logs "
                    "where dagster_event_type = 'ASSET_MATERIALIZATION' and partition is not null")
        stored = {(json.loads(key)[0], part, run) for key, part, run in cur.fetchall()}
        assert stored == {(asset, s, store_run_ids[s]) for asset in PER_STORE_ASSETS for s in STORES}
        cur.execute("select partition from dynamic_partitions where partitions_def_name = 'stores'")
        assert sorted(r[0] for r in cur.fetchall()) == sorted(all_stores)
        cur.execute("select partition, execution_status, run_id from asset_check_executions "
                    "where check_name = 'gx_store_features'")
        checks = cur.fetchall()
        assert {(p, status, run) for p, status, run in checks} == {
            (s, "SUCCEEDED", store_run_ids[s]) for s in STORES}
    con.close()
