"""Faults, on one real Prefect server (SQLite) and `dualop serve` shared by the module.

- a SIGKILL of the runner (and its flow-run process) in the middle of a paved-road deploy;
- the Prefect server restarted while a migration awaits approval;
- a git remote that cannot be reached;
- a full disk under the deploy root.

Crashed runs are found by the automation `dualop serve` (and `dualop deploy`) installs,
Prefect's documented "detect zombie flows": flow runs send heartbeats every 30 s and a
run silent for `crash_after_s` (here `ZOMBIE_AFTER`, the shortest allowed) without a
final state or a suspension is marked Crashed. A restarted runner does not do it: it
does not know the runs of the process that died.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dualop.cli import main
from dualop.deploy.local import read_marker
from dualop.stack import ManagedProcess
from dualop.testing import RepoBuilder
from flows.deployments import HEARTBEAT_SECONDS as HEARTBEAT_S
from flows.prefect_api import active_runs, read_run, start_deployment
from tests.e2e.helpers import children, heritage_yaml, py, service_yaml, wait_for
from tests.suites.conftest import SuiteStack, suite_stack, wait_until
from tests.support import descendants, kill_known, ops_inbox

pytestmark = pytest.mark.e2e

WINDOWS = 'windows:\n  always: {cron: "* * * * *", duration: 2h, timezone: UTC}\n'
APPROVERS = "people: [alice, bob, carol]\n"
ZOMBIE_AFTER = timedelta(seconds=45)  # no heartbeat for this long: Crashed (the minimum)
DEPLOYMENTS = ["route/route", "paved-road/paved-road", "migration/migration"]

# A build (build.py in the service's repo) writing `count` files under dist/.
BUILD = """\
import pathlib
for i in range({count}):
    folder = pathlib.Path("dist") / f"d{{i // 100:03d}}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"f{{i % 100:03d}}").write_text("built")
"""


@dataclass
class Faults:
    """The module's server and runner, restartable by the tests."""

    stack: SuiteStack
    serving: ManagedProcess
    ops_url: str

    @property
    def deploy_root(self) -> Path:
        return self.stack.data_dir / "deploy"

    def start_serving(self) -> None:
        self.serving = self.stack.serve()
        for name in DEPLOYMENTS:
            self.stack.wait_deployment(name, self.serving)

    def runner_processes(self) -> dict[int, str]:
        return descendants(self.serving.proc.pid)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until the runner has no flow-run process left (a suspended run's process exits
        a moment after its state is set)."""
        wait_until(
            lambda: not self.runner_processes(),
            timeout=timeout,
            every=0.2,
            what="no flow-run process left under the runner",
        )

    def release(self, service: str, ref: str | None = None) -> str:
        """What `dualop release SERVICE [--ref REF]` does: a run of `route`."""
        return start_deployment(
            "route/route",
            {"service": service, "ref": ref, "trigger": "cli", "requested_by": "test"},
        )

    def current(self, service: str) -> Path:
        return self.deploy_root / service / "current"


@pytest.fixture(scope="module")
def ops_endpoint() -> Iterator[str]:
    """A real HTTP endpoint for apprise's json:// (the ops squad of heritage services)."""
    with ops_inbox() as (url, _):
        yield url


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, ops_endpoint: str) -> Iterator[Faults]:
    root = tmp_path_factory.mktemp("faults")
    with suite_stack(
        root,
        windows=WINDOWS,
        approvers=APPROVERS,
        extra_env={"DUALOP_CRASH_AFTER_S": str(ZOMBIE_AFTER.total_seconds())},
    ) as stack:
        faults = Faults(stack, stack.serve(), ops_endpoint)
        for name in DEPLOYMENTS:
            stack.wait_deployment(name, faults.serving)
        yield faults


def state_of(run: Any) -> str:
    return run.state.type.value if run.state is not None else "NONE"


def digital(faults: Faults, name: str) -> RepoBuilder:
    """A digital service whose build is build.py in its repo (first: one file)."""
    repo = RepoBuilder.init(faults.stack.root / "repos" / name)
    repo.commit(
        "feat: first",
        files={"app.py": "VERSION = 1\n", "build.py": BUILD.format(count=1)},
    )
    faults.stack.add_service(
        name, service_yaml(name, repo.path, build=[sys.executable, "build.py"])
    )
    return repo


def complete_release(current: Path) -> dict[str, Any]:
    """The marker of the release `current` names; fails unless it is a complete release."""
    assert current.is_symlink(), f"{current} is not a link"
    marker = read_marker(current.resolve())
    assert marker is not None, f"{current} -> {os.readlink(current)} is not a complete release"
    return marker


# --- git remote unreachable ------------------------------------------------------------------


def test_unreachable_git_remote_fails_clearly_and_deploys_nothing(faults: Faults) -> None:
    """The service's repository is gone (a file:// URL removed after the catalog was
    written): the release fails naming the repository; nothing is deployed."""
    repo = RepoBuilder.init(faults.stack.root / "repos" / "gone-web")
    repo.commit("feat: first", files={"app.py": "VERSION = 1\n"})
    url = f"file://{repo.path}"
    text = service_yaml("gone-web", repo.path).replace(f"repo: {repo.path}", f"repo: {url}")
    faults.stack.add_service("gone-web", text)
    shutil.rmtree(repo.path)
    run = wait_for(faults.release("gone-web"), timeout=180)
    assert state_of(run) == "FAILED", run.state
    message = run.state.message or ""
    assert f"cannot fetch {url}" in message, message
    assert "check that the repository exists" in message, message
    assert children(run.id) == []  # the paved road never started
    assert not (faults.deploy_root / "gone-web").exists()


# --- disk full --------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str) -> Iterator[str]:
    """A `size` tmpfs mounted on `folder` (root with CAP_SYS_ADMIN), else, for a user
    without it, `folder` made read-only once it has its first release. Yields which."""
    folder.mkdir(parents=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted and os.geteuid() == 0:
        pytest.skip("root without the right to mount a tmpfs: cannot fill a disk here")
    try:
        yield "tmpfs" if mounted else "read-only"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        else:
            for path in (folder, folder / "releases"):
                if path.exists():
                    path.chmod(0o755)


def test_full_disk_fails_clearly_and_keeps_the_live_release(faults: Faults) -> None:
    """The deploy root of the service is a 1 MiB tmpfs (as root; for other users its
    releases folder is made read-only instead); the next release writes 2 MiB and cannot
    be copied: the run fails naming the cause, the previous release stays live under
    `current`, and no partial copy is left behind."""
    home = faults.deploy_root / "full-web"
    with tiny_disk(home, "1m") as how:
        repo = digital(faults, "full-web")
        first = wait_for(faults.release("full-web"), timeout=240)
        assert state_of(first) == "COMPLETED", first.state
        assert complete_release(home / "current")["version"] == "0.1.0"
        if how == "read-only":
            (home / "releases").chmod(0o555)
            home.chmod(0o555)
        big = "import pathlib; pathlib.Path('dist').mkdir(); pathlib.Path('dist/blob').write_bytes(b'x' * 2 * 1024 * 1024)"
        repo.commit("feat: bigger", files={"build.py": big})
        second = wait_for(faults.release("full-web"), timeout=240)
        assert state_of(second) == "FAILED", second.state
        message = second.state.message or ""
        why = "no space left on" if how == "tmpfs" else "permission denied"
        assert why in message.lower(), message
        assert "rolled back to 0.1.0" in message, message
        marker = complete_release(home / "current")
        assert marker["version"] == "0.1.0" and marker["commit"] == repo.git("rev-parse", "HEAD~1")
        assert sorted(p.name for p in (home / "releases").iterdir()) == ["0.1.0"]


# --- the Prefect server restarted while a migration awaits approval ----------------------------


def heritage(faults: Faults, name: str) -> tuple[RepoBuilder, Path]:
    """A heritage service with one logged step, approved by one of alice or bob."""
    repo = RepoBuilder.init(faults.stack.root / "repos" / name)
    repo.commit("ledger: CR-1", author="Jean Sammet")
    log = faults.stack.root / f"{name}-steps.log"

    def argv(stage: str) -> str:
        return json.dumps(py(f"open({str(log)!r}, 'a').write('{stage}\\n')"))

    step = (
        f"{{name: migrate, apply: {argv('apply')}, verify: {argv('verify')}, "
        f"rollback: {argv('rollback')}, estimate: 1m}}"
    )
    faults.stack.add_service(
        name,
        heritage_yaml(
            name,
            repo.path,
            window="always",
            approvers=["alice", "bob"],
            steps=[step],
            notify=faults.ops_url,
        ),
    )
    return repo, log


def awaiting_approval(service: str, timeout: float = 180) -> str:
    def find() -> str | None:
        for run in active_runs("migration", service):
            if run.waiting_for == "approval":
                return run.id
        return None

    found: str = wait_until(find, timeout=timeout, what=f"{service} awaiting approval")
    return found


def test_server_restart_keeps_a_migration_awaiting_approval(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM to `prefect server start`, started again on the same port and database: the
    migration is still Suspended at the approval gate (also past the zombie window: no
    heartbeat while suspended is no crash), listed by `dualop approvals`, and approving it
    then completes it."""
    repo, log = heritage(faults, "restart-ledger")
    start_deployment(
        "migration/migration",
        {"service": "restart-ledger", "trigger": "cli", "requested_by": "carol"},
    )
    run_id = awaiting_approval("restart-ledger")
    suspended_at = time.perf_counter()
    faults.wait_idle()
    t0 = time.perf_counter()
    faults.stack.stop_server(signal.SIGTERM)
    faults.stack.start_server()
    restart_s = time.perf_counter() - t0
    info = read_run(run_id)
    assert (info.state_name, info.waiting_for) == ("Suspended", "approval"), info
    capsys.readouterr()
    assert main(["approvals", "--json"]) == 0
    listed = [i for i in json.loads(capsys.readouterr().out) if i["flow_run_id"] == run_id]
    assert listed and listed[0]["service"] == "restart-ledger" and listed[0]["required"] == 1
    runner_survived = faults.serving.alive()
    if not runner_survived:  # the runner gave up on the API while it was down
        faults.start_serving()
    # Silent for longer than the zombie window: a suspended run is not a crashed one.
    quiet = ZOMBIE_AFTER.total_seconds() + 10 - (time.perf_counter() - suspended_at)
    time.sleep(max(0.0, quiet))
    assert read_run(run_id).state_name == "Suspended", read_run(run_id)
    assert main(["approve", run_id, "--as", "alice", "--comment", "after the restart"]) == 0
    final = wait_for(run_id, timeout=240)
    assert state_of(final) == "COMPLETED", final.state
    assert log.read_text().splitlines() == ["apply", "verify"]
    assert repo.git("tag") == "restart-ledger/v0.1.0"
    with capsys.disabled():
        print(
            f"\n[faults] Prefect server restarted in {restart_s:.1f}s; "
            f"`dualop serve` survived the restart: {runner_survived}"
        )


# --- SIGKILL during a paved-road deploy ----------------------------------------------------------


def test_sigkill_during_deploy_crashes_the_run_and_a_rerun_finishes_it(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runner and its flow-run process are SIGKILLed while the deploy copies an 8 000
    file release: `current` still names the complete previous release, the runs are
    marked Crashed (heartbeats), and re-releasing the same commit completes it."""
    repo = digital(faults, "kill-web")
    home = faults.deploy_root / "kill-web"
    first = wait_for(faults.release("kill-web"), timeout=240)
    assert state_of(first) == "COMPLETED", first.state
    assert complete_release(home / "current")["version"] == "0.1.0"

    commit = repo.commit("fix: a big build", files={"build.py": BUILD.format(count=8000)})
    run_id = faults.release("kill-web", commit)
    copying = wait_until(
        lambda: [p for p in (home / "releases").iterdir() if p.name.startswith(".tmp-")],
        timeout=300,
        every=0.05,
        what="the deploy copying the release",
    )
    victims = faults.runner_processes()
    kill_known(victims)  # the flow-run process first: it is the one deploying
    os.killpg(faults.serving.proc.pid, signal.SIGKILL)
    faults.serving.proc.wait(timeout=30)
    killed_at = time.perf_counter()
    assert victims, "no flow-run process under the runner"
    assert copying[0].exists() and not (home / "releases" / "0.1.1").exists()
    assert complete_release(home / "current")["version"] == "0.1.0"

    route = read_run(run_id)
    assert route.state_type == "RUNNING", route
    faults.start_serving()
    wait_until(
        lambda: read_run(run_id).state_type != "RUNNING",
        timeout=ZOMBIE_AFTER.total_seconds() + HEARTBEAT_S + 60,
        every=1,
        what="the killed route run leaving Running",
    )
    assert read_run(run_id).state_type == "CRASHED", read_run(run_id)
    crash_s = time.perf_counter() - killed_at
    [paved] = children(run_id)
    paved_run = wait_for(paved.id, timeout=60, until={"CRASHED"})
    assert state_of(paved_run) == "CRASHED"
    assert "no heartbeat" in (paved_run.state.message or "")

    rerun = wait_for(faults.release("kill-web", commit), timeout=300)
    rerun_s = time.perf_counter() - killed_at
    assert state_of(rerun) == "COMPLETED", rerun.state
    marker = complete_release(home / "current")
    assert (marker["version"], marker["commit"]) == ("0.1.1", commit)
    assert not [p for p in (home / "releases").iterdir() if p.name.startswith(".")]
    with capsys.disabled():
        print(
            f"\n[faults] SIGKILL during deploy: {len(victims)} runner process(es) killed; "
            f"runs marked Crashed {crash_s:.0f}s after the kill (heartbeat every "
            f"{HEARTBEAT_S}s, crash after {ZOMBIE_AFTER.total_seconds():.0f}s of silence); "
            f"re-release Completed {rerun_s:.0f}s after the kill"
        )
