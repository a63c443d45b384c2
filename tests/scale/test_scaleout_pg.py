"""Scale-out on Prefect's own topology: a Prefect server on a fresh PostgreSQL database,
two process workers on one work pool, dualop's deployments registered with
`dualop deploy --pool`, the audit log in PostgreSQL.

40 releases of 10 digital services (four commits each, started two at a time, so that
older commits get superseded) and 3 heritage migrations approved while the releases run.
Asserted: every release ends Completed, or Cancelled as superseded naming a newer commit;
no service ever has two deploys at once (the recording deployer, one record shared by
both workers); deploys never go backwards and every service ends on its newest commit;
the migrations complete after their approvals; the audit chain verifies. Printed:
releases per minute, how many runs each worker executed, CPU seconds per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from dualop.stack import ManagedProcess, free_port, prefect_env, spawn, wait_until_healthy
from dualop.testing import RepoBuilder
from tests.e2e.helpers import FINAL, heritage_yaml, py
from tests.support import activated

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

POOL = "dualop-scale"
DIGITAL = [f"web-{i:02d}" for i in range(10)]
COMMITS = 4  # per digital service: 40 releases
HERITAGE = {"ledger-a": 1, "ledger-b": 1, "ledger-c": 2}  # service: approvals required
APPROVERS = ["alice", "bob"]
WORKERS = 2
WORKER_LIMIT = 4
WORKER_ARGV = [sys.executable, "-m", "dualop.cli", "worker", "--pool", POOL]
DEADLINE_S = 1200.0  # every run final within this, once the runs are started

WINDOWS = """
windows:
  # Open at every instant (a 2 h window opening each hour).
  always: {cron: "0 * * * *", duration: 2h, timezone: UTC}
  weekend-night: {cron: "0 2 * * 6", duration: 4h, timezone: Europe/London}
"""
DEPLOYMENTS = {
    "route/route",
    "paved-road/paved-road",
    "migration/migration",
    "migration-window/migration-window",
    "approval-deadlines/approval-deadlines",
}
SUPERSEDED = re.compile(
    r"^superseded by newer commit (?P<newer>[0-9a-f]{12}) of (?P<service>[a-z0-9-]+); "
    r"(?P<commit>[0-9a-f]{12}) not deployed$"
)


# --- the catalog and its repositories ----------------------------------------------------


def digital_yaml(name: str, repo: Path) -> str:
    return (
        f"name: {name}\nrepo: {repo}\nbranch: main\nowner: team-scale\nruntime: python3.12\n"
        "operating_model: digital\nreason: scale-out test service\ndeploy: {kind: local}\n"
        'paved_road: {build: ["true"], test: ["true"]}\n'
    )


def logged_steps(log: Path) -> list[str]:
    """Two migration steps whose commands append `<stage> <step>` lines to `log`."""

    def argv(stage: str, step: str) -> str:
        return json.dumps(py(f"open({str(log)!r}, 'a').write('{stage} {step}\\n')"))

    return [
        f"{{name: {s}, apply: {argv('apply', s)}, verify: {argv('verify', s)}, "
        f"rollback: {argv('rollback', s)}, estimate: 1m}}"
        for s in ("backup", "migrate")
    ]


@dataclass
class Scenario:
    root: Path
    config: Path
    data: Path
    record: Path
    repos: dict[str, RepoBuilder] = field(default_factory=dict)
    commits: dict[str, list[str]] = field(default_factory=dict)
    step_logs: dict[str, Path] = field(default_factory=dict)


def build_catalog(root: Path, notify: str) -> Scenario:
    """10 digital services with 4 commits each, 3 heritage services with one change."""
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(WINDOWS)
    (config / "approvers.yaml").write_text("people: [alice, bob, carol]\n")
    data = root / "data"
    scenario = Scenario(root, config, data, data / "deploy-record.jsonl")
    for name in DIGITAL:
        repo = RepoBuilder.init(root / "repos" / name)
        scenario.repos[name] = repo
        scenario.commits[name] = [
            repo.commit(f"feat: change {i} of {name}", files={"app.py": f"VERSION = {i}\n"})
            for i in range(1, COMMITS + 1)
        ]
        (config / "services" / f"{name}.yaml").write_text(digital_yaml(name, repo.path))
    for name, required in HERITAGE.items():
        repo = RepoBuilder.init(root / "repos" / name)
        repo.commit(f"ledger: CR-1 of {name}", author="Jean Sammet")
        scenario.repos[name] = repo
        scenario.step_logs[name] = root / f"{name}-steps.log"
        (config / "services" / f"{name}.yaml").write_text(
            heritage_yaml(
                name,
                repo.path,
                window="always",
                approvers=["alice", "bob", "carol"],
                required=required,
                steps=logged_steps(scenario.step_logs[name]),
                notify=notify,
            )
        )
    return scenario


# --- talking to the server ---------------------------------------------------------------


def read_runs(ids: list[str]) -> dict[str, Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        for i in range(0, len(ids), 100):
            chunk = [UUID(x) for x in ids[i : i + 100]]
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=100
            ):
                found[str(run.id)] = run
    return found


def pool_runs() -> list[Any]:
    """Every flow run of the pool's deployments (not the paved-road runs inside routes)."""
    from prefect import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            batch = client.read_flow_runs(
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[POOL])),
                limit=200,
                offset=len(runs),
            )
            runs += batch
            if len(batch) < 200:
                return runs


def flow_names() -> dict[UUID, str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return {f.id: f.name for f in client.read_flows(limit=50)}


def migration_runs() -> dict[str, str]:
    """service: id of its `migration` run (the window opening starts one per service)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["migration"])), limit=50
        )
    return {str(r.parameters["service"]): str(r.id) for r in runs}


def executions_by_worker(workers: list[ManagedProcess]) -> tuple[dict[str, Counter[str]], int]:
    """worker name: {run id: executions}, and how many submissions lost the race.

    Read from each worker's own output: `Worker 'NAME' submitting flow run 'ID'`, less
    `Aborted submission of flow run 'ID'` when the other worker took the run first. A
    migration resumed after an approval is submitted again, maybe by the other worker.
    """
    submitting = re.compile(r"Worker '(?P<worker>[^']+)' submitting flow run '(?P<run>[0-9a-f-]+)'")
    aborted = re.compile(r"Aborted submission of flow run '(?P<run>[0-9a-f-]+)'")
    found: dict[str, Counter[str]] = {}
    races = 0
    for worker in workers:
        assert worker.log_path is not None
        runs: Counter[str] = Counter()
        name = worker.name
        for line in worker.log_path.read_text(errors="replace").splitlines():
            if m := submitting.search(line):
                name = m["worker"]
                runs[m["run"]] += 1
            elif m := aborted.search(line):
                runs[m["run"]] -= 1
                races += 1
        found[name] = +runs  # drops runs whose only submission was aborted
    return found, races


def audit_log() -> Any:
    from dualop.audit import open_audit_log
    from dualop.settings import load_settings

    return open_audit_log(load_settings())


def cpu_seconds(process: ManagedProcess) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of a live process, from /proc."""
    fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return own, children


def stop_workers(workers: list[ManagedProcess], api_url: str) -> None:
    """Pause the pool, let in-flight runs end (bounded), stop the workers, then end any
    flow-run process they left behind (Prefect starts each in its own session)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    pids: set[int] = set()
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        client.update_work_pool(POOL, WorkPoolUpdate(is_paused=True))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            runs = pool_runs()
            pids |= {int(r.infrastructure_pid) for r in runs if str(r.infrastructure_pid).isdigit()}
            if not any(r.state and r.state.type.value in {"RUNNING", "PENDING"} for r in runs):
                break
        time.sleep(1)
    for worker in workers:
        worker.stop(grace=15)
    marker = f"PREFECT_API_URL={api_url}".encode()
    for pid in pids:  # ours only: started by our workers, for our server
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                os.kill(pid, signal.SIGKILL)


# --- the phases --------------------------------------------------------------------------


def register_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    """`dualop deploy --pool`: the pool, the deployments on it, window schedules in their
    own timezone, one `release-<service>` limit per service."""
    from prefect import get_client

    from dualop.cli import main

    capsys.readouterr()
    assert main(["deploy", "--pool", POOL, "--json"]) == 0
    registered = json.loads(capsys.readouterr().out)
    assert registered["pool"] == POOL and registered["pool_created"] is True
    assert {d["name"] for d in registered["deployments"]} == DEPLOYMENTS
    with get_client(sync_client=True) as client:
        window = client.read_deployment_by_name("migration-window/migration-window")
        assert window.work_pool_name == POOL
        assert window.entrypoint == "flows.migration.migration_window"
        assert not window.pull_steps and window.path is None  # workers import flows.*
        crons = {
            (s.schedule.cron, s.schedule.timezone, (s.parameters or {}).get("window"))
            for s in window.schedules
        }
        assert crons == {
            ("0 * * * *", "UTC", "always"),
            ("0 2 * * 6", "Europe/London", "weekend-night"),
        }
        limits = {lim.name: lim.limit for lim in client.read_global_concurrency_limits(limit=100)}
        assert all(limits.get(f"release-{n}") == 1 for n in [*DIGITAL, *HERITAGE]), limits
        sweeper = client.read_deployment_by_name("approval-deadlines/approval-deadlines")
        assert sweeper.work_pool_name == POOL and sweeper.schedules
        # Every minute it costs a flow-run process (~5-10 s of CPU here) and no deadline
        # can pass in this test (2 h): paused, so the two cores go to the releases.
        client.pause_deployment(sweeper.id)


def start_releases(scenario: Scenario) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """Heritage first (their changes queue for the window; its opening starts the
    migrations), then the digital releases: per service commits 1 and 2 together, then
    3 and 4. Returns {route run: (service, commit index)} and the heritage runs."""
    from flows.prefect_api import start_deployment

    heritage = [
        start_deployment("route/route", {"service": s, "trigger": "cli", "requested_by": "carol"})
        for s in HERITAGE
    ]
    heritage.append(start_deployment("migration-window/migration-window", {"window": "always"}))

    def start(name: str, index: int) -> str:
        parameters = {
            "service": name,
            "ref": scenario.commits[name][index],
            "trigger": "cli",
            "requested_by": "scale-test",
        }
        return start_deployment("route/route", parameters, idempotency_key=f"scale:{name}:{index}")

    releases: dict[str, tuple[str, int]] = {}
    # Four at a time, like concurrent webhook deliveries; each wave waits for the last.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="start") as pool:
        for pair in range(0, COMMITS, 2):
            wave = [(name, index) for name in DIGITAL for index in (pair, pair + 1)]
            for key, run_id in zip(wave, pool.map(lambda k: start(*k), wave), strict=True):
                releases[run_id] = key
    return releases, heritage


@dataclass
class Progress:
    finished_at: dict[str, float] = field(default_factory=dict)
    migrations: dict[str, str] = field(default_factory=dict)  # service: run id
    approved: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def drive_to_the_end(
    watched: list[str], workers: list[ManagedProcess], capsys: pytest.CaptureFixture[str]
) -> Progress:
    """Approve each migration waiting at its gate (`dualop approve --as alice`, then bob),
    until every watched run and every migration is final."""
    from dualop.cli import main
    from flows.inbox import pending_approvals

    progress = Progress()
    started = time.monotonic()
    while True:
        runs = read_runs([*watched, *progress.migrations.values()])
        now = time.monotonic()
        for run_id, run in runs.items():
            if run.state and run.state.type.value in FINAL:
                progress.finished_at.setdefault(run_id, now)
        progress.migrations.update(migration_runs())
        for item in pending_approvals(audit_log()):
            run_id = item["flow_run_id"]
            who = next(a for a in APPROVERS if a not in item["approvals"])
            if who in progress.approved[run_id]:
                continue  # resumed already; the flow has not recorded it yet
            comment = f"scale-out test, {len(progress.finished_at)} runs final"
            assert main(["approve", run_id, "--as", who, "--comment", comment]) == 0, (
                capsys.readouterr().err
            )
            progress.approved[run_id].append(who)
        pending = [r for r in [*watched, *progress.migrations.values()] if r not in runs]
        unfinished = [r for r in runs if r not in progress.finished_at]
        if not pending and not unfinished and len(progress.migrations) == len(HERITAGE):
            capsys.readouterr()
            return progress
        if now - started > DEADLINE_S:
            states = Counter(r.state.name if r.state else "?" for r in runs.values())
            tails = "\n".join(f"--- {w.name}\n{w.tail(12)}" for w in workers)
            raise AssertionError(
                f"not all runs final after {DEADLINE_S:.0f}s: {dict(states)}; "
                f"migrations {progress.migrations}\n{tails}"
            )
        for w in workers:
            assert w.alive(), f"{w.name} exited:\n{w.tail()}"
        time.sleep(2.0)


def check_releases(
    scenario: Scenario, releases: dict[str, tuple[str, int]]
) -> tuple[dict[str, list[int]], int]:
    """Completed, or Cancelled as superseded by a newer commit; deploys never overlap,
    never go backwards, and each service ends live on its newest commit."""
    from dualop.deploy.recording import overlaps, read_record

    runs = read_runs(list(releases))
    released: dict[str, list[int]] = defaultdict(list)
    superseded = 0
    for run_id, (name, index) in releases.items():
        state = runs[run_id].state
        assert state is not None
        if state.type.value == "COMPLETED":
            released[name].append(index)
            continue
        assert state.type.value == "CANCELLED", (name, index, state.name, state.message)
        m = SUPERSEDED.match(state.message or "")
        assert m, (name, index, state.message)
        newer = [c[:12] for c in scenario.commits[name][index + 1 :]]
        assert m["service"] == name and m["newer"] in newer, (state.message, newer)
        assert m["commit"] == scenario.commits[name][index][:12]
        superseded += 1
    record = read_record(scenario.record)
    assert overlaps(scenario.record) == []
    assert all(e["ok"] and e["action"] == "deploy" for e in record), record
    for name in DIGITAL:
        deployed = [
            scenario.commits[name].index(e["commit"])
            for e in sorted(record, key=lambda e: e["start"])
            if e["service"] == name
        ]
        assert deployed == sorted(released[name]), (name, deployed, released[name])
        assert deployed == sorted(set(deployed)) and deployed[-1] == COMMITS - 1
        live = (scenario.data / "deploy" / name / "current").resolve()
        assert (live / "app.py").read_text() == f"VERSION = {COMMITS}\n"
    return released, superseded


def check_heritage(
    scenario: Scenario,
    heritage: list[str],
    progress: Progress,
    handed_over: list[dict[str, Any]],
) -> None:
    """Routed and queued, started by the window opening, migrated after exactly the
    approvals the policy asks for, tagged, deployed once, handed over."""
    from dualop.deploy.recording import read_record

    runs = read_runs([*heritage, *progress.migrations.values()])
    for run_id, run in runs.items():
        assert run.state is not None and run.state.type.value == "COMPLETED", (run_id, run.state)
    record = read_record(scenario.record)
    for name, required in HERITAGE.items():
        run_id = progress.migrations[name]
        assert progress.approved[run_id] == APPROVERS[:required]
        assert scenario.step_logs[name].read_text().splitlines() == [
            "apply backup",
            "verify backup",
            "apply migrate",
            "verify migrate",
        ]
        assert scenario.repos[name].git("tag") == f"{name}/v0.1.0"
        assert [e["service"] for e in record].count(name) == 1
        assert any(name in m.get("title", "") for m in handed_over), handed_over


def check_audit(released: dict[str, list[int]], superseded: int) -> str:
    """One outcome per digital release in the PostgreSQL audit log; the chain verifies."""
    from dualop.cli import main

    outcomes = [
        e for e in audit_log().entries(kinds=["release.outcome"]) if e.service in set(DIGITAL)
    ]
    assert Counter(e.data["outcome"] for e in outcomes) == Counter(
        {"released": sum(map(len, released.values())), "superseded": superseded}
    )
    assert main(["audit", "verify"]) == 0
    return "verified"


# --- the test ----------------------------------------------------------------------------


def test_scaleout_on_postgres(
    tmp_path: Path,
    pg_databases: tuple[str, str],
    ops_endpoint: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.monotonic()
    prefect_db, audit_dsn = pg_databases
    notify_url, handed_over = ops_endpoint
    port = free_port()
    server_env = prefect_env(tmp_path / "server", port=port, database_url=prefect_db)
    Path(server_env["PREFECT_HOME"]).mkdir(parents=True)
    server = spawn(
        "prefect server",
        [sys.executable, "-m", "prefect", "server", "start"],
        env=server_env,
        log_path=tmp_path / "prefect-server.log",
        cwd=None,
    )
    workers: list[ManagedProcess] = []
    try:
        scenario = build_catalog(tmp_path, notify_url)  # while the server migrates its DB
        # What the worker machines share: the API, the catalog, the data folder (deploy
        # root, workspaces, persisted results) and the audit database. Each worker has its
        # own PREFECT_HOME, as on separate machines, and no database URL.
        env = prefect_env(scenario.data, port=port)
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        env.update(
            DUALOP_CONFIG_DIR=str(scenario.config),
            DUALOP_AUDIT__BACKEND="postgres",
            DUALOP_AUDIT__DSN=audit_dsn,
            DUALOP_DEPLOY_RECORD=str(scenario.record),
            DUALOP_LOG_FORMAT="json",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
        )
        Path(env["PREFECT_HOME"]).mkdir(parents=True)
        wait_until_healthy(f"{env['PREFECT_API_URL']}/health", timeout=300, process=server)
        server_up = time.monotonic()

        with activated(env):
            register_and_check(capsys)
            for i in range(1, WORKERS + 1):
                home = tmp_path / f"worker-{i}" / "prefect"
                home.mkdir(parents=True)
                workers.append(
                    spawn(
                        f"worker-{i}",
                        [*WORKER_ARGV, "--limit", str(WORKER_LIMIT), "--name", f"scale-w{i}"],
                        env=dict(env, PREFECT_HOME=str(home)),
                        log_path=tmp_path / f"worker-{i}.log",
                        cwd=tmp_path,
                    )
                )
            t0 = time.monotonic()
            releases, heritage = start_releases(scenario)
            started = time.monotonic()
            progress = drive_to_the_end([*releases, *heritage], workers, capsys)
            ended = time.monotonic()

            released, superseded = check_releases(scenario, releases)
            check_heritage(scenario, heritage, progress, handed_over)
            check_audit(released, superseded)
            entries = len(audit_log().entries())

            # The pool's runs that ran (the scheduler also creates the window's future runs).
            all_runs = [r for r in pool_runs() if r.start_time is not None]
            assert all(r.work_pool_name == POOL for r in all_runs)
            split, races = executions_by_worker(workers)
            assert set(split) == {f"scale-w{i}" for i in range(1, WORKERS + 1)}, split
            assert all(split.values()), split  # both workers ran releases
            ran = {run for runs in split.values() for run in runs}
            assert ran == {str(r.id) for r in all_runs}
            cpu = {w.name: cpu_seconds(w) for w in workers}
            cpu["server"] = cpu_seconds(server)
            names = flow_names()
            flows = Counter(names[r.flow_id] for r in all_runs)
            release_span = max(progress.finished_at[r] for r in releases) - t0
            deployed = sum(map(len, released.values()))
            executions = sum(sum(c.values()) for c in split.values())
            lines = [
                "",
                f"scale-out on PostgreSQL: 1 Prefect server, {WORKERS} process workers "
                f"(--limit {WORKER_LIMIT}) on pool {POOL!r}, {os.cpu_count()} CPUs",
                f"  server healthy on a fresh database   {server_up - began:7.1f} s",
                f"  {len(releases) + len(heritage)} runs started in{'':17}{started - t0:7.1f} s",
                f"  all runs final after                 {ended - t0:7.1f} s",
                f"  {len(releases)} digital releases final after    {release_span:7.1f} s"
                f" = {len(releases) / release_span * 60:.1f} releases/min "
                f"({deployed} deployed, {superseded} superseded)",
                f"  flow runs executed on the pool       {len(all_runs)} ("
                + ", ".join(f"{k} {v}" for k, v in sorted(flows.items()))
                + ")",
                *(
                    f"  worker {w:<29} {sum(c.values())} executions of {len(c)} runs"
                    for w, c in sorted(split.items())
                ),
                f"  submissions lost to the other worker {races}",
                *(
                    f"  CPU {name:<12} {own:7.1f} s own, {children:7.1f} s flow runs"
                    for name, (own, children) in cpu.items()
                ),
                f"  CPU per flow-run execution           "
                f"{sum(c for _, c in cpu.values()) / executions:7.1f} s in the run, "
                f"{cpu['server'][0] / executions:.1f} s in the server",
                f"  audit chain (PostgreSQL)             verified, {entries} entries",
                f"  test total                           {time.monotonic() - began:7.1f} s",
            ]
            with capsys.disabled():
                print("\n".join(lines))
            stop_workers(workers, env["PREFECT_API_URL"])
    finally:
        for w in workers:
            w.stop(grace=10)
        server.stop()
