"""Helpers for end-to-end tests against the session's real Prefect server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.client.schemas.objects import FlowRun

from dualop.stack import ManagedProcess, spawn, start_prefect_server, wait_until_healthy
from dualop.testing import RepoBuilder

__all__ = ["E2EStack"]


DEPLOYMENTS = [
    "route/route",
    "paved-road/paved-road",
    "migration/migration",
    "migration-window/migration-window",
    "approval-deadlines/approval-deadlines",
]


@dataclass
class E2EStack:
    """The session's Prefect server and served deployments, and their folders."""

    root: Path
    config_dir: Path
    data_dir: Path
    env: dict[str, str]
    api_url: str
    server: ManagedProcess | None = None
    serving: ManagedProcess | None = None

    def add_service(self, name: str, yaml_text: str) -> None:
        (self.config_dir / "services" / f"{name}.yaml").write_text(yaml_text)

    def start(self) -> None:
        """What `make up` starts: the Prefect server (SQLite), then `dualop serve`."""
        self.server = start_prefect_server(self.env, log_path=self.root / "prefect-server.log")
        self.serving = spawn(
            "dualop serve",
            [sys.executable, "-m", "dualop.cli", "serve"],
            env=self.env,
            log_path=self.root / "serve.log",
            cwd=None,
        )
        for name in DEPLOYMENTS:  # serve registers them one by one
            wait_until_healthy(
                f"{self.api_url}/deployments/name/{name}", timeout=120, process=self.serving
            )

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until the runner has no flow-run process left: a suspending run has set its
        state but its process is still exiting, and a signal then would crash it."""
        assert self.serving is not None
        deadline = time.monotonic() + timeout
        while subprocess.run(
            ["pgrep", "-P", str(self.serving.proc.pid)], capture_output=True, check=False
        ).stdout.strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the runner still had flow-run processes after {timeout}s")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop both with `sig` (each process group: the runner's flow-run children too)."""
        for process in (self.serving, self.server):
            if process is not None:
                process.stop(sig=sig)


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def read_run(run_id: str | UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(run_id)))


def wait_for(
    run_id: str | UUID,
    *,
    until: set[str] | None = None,
    name: str | None = None,
    timeout: float = 120.0,
) -> FlowRun:
    """Poll until the run's state type is in `until` (default: final) or its name is `name`."""
    until = until or FINAL
    deadline = time.monotonic() + timeout
    while True:
        run = read_run(run_id)
        state = run.state
        if state is not None and (state.type.value in until or (name and state.name == name)):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} still {state.name if state else None} after {timeout}s"
            )
        time.sleep(0.5)


def children(run_id: str | UUID) -> list[FlowRun]:
    """Child flow runs (subflows) of a run."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id={"any_": [UUID(str(run_id))]})  # type: ignore[arg-type]
        )
        ids = [t.id for t in task_runs]
        if not ids:
            return []
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_task_run_id={"any_": ids})  # type: ignore[arg-type]
        )


def artifacts_of(run_id: str | UUID) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))])
            )
        )


def audit(data_dir: Path, **match: Any) -> list[dict[str, Any]]:
    path = data_dir / "audit.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        e for e in entries if all(e.get(k) == v or e["data"].get(k) == v for k, v in match.items())
    ]


def py(code: str) -> list[str]:
    """An argv that runs `code` with this interpreter (no shell)."""
    return [sys.executable, "-c", code]


def digital_repo(root: Path, name: str) -> RepoBuilder:
    repo = RepoBuilder.init(root / "repos" / name)
    repo.commit("feat: first", files={"app.py": "VERSION = 1\n"})
    return repo


def service_yaml(
    name: str,
    repo: Path,
    *,
    build: list[str] | None = None,
    test: list[str] | None = None,
    health: list[str] | None = None,
    extra: str = "",
) -> str:
    build = build or py(
        "import pathlib; pathlib.Path('dist').mkdir(); pathlib.Path('dist/app').write_text('built')"
    )
    test = test or py("print('tests pass')")
    lines = [
        f"name: {name}",
        f"repo: {repo}",
        "branch: main",
        "owner: team-e2e",
        "runtime: python3.12",
        "operating_model: digital",
        "reason: end-to-end test service",
        "deploy: {kind: local}",
        f"paved_road: {{build: {json.dumps(build)}, test: {json.dumps(test)}}}",
    ]
    if health is not None:
        lines.append(f"health: {{command: {json.dumps(health)}, budget: 3s, timeout: 2s}}")
    return "\n".join(lines) + "\n" + extra


def heritage_yaml(
    name: str,
    repo: Path,
    *,
    window: str,
    approvers: list[str],
    required: int = 1,
    steps: list[str] | None = None,
    notify: str = "json://127.0.0.1:9/",
) -> str:
    """A heritage service (forced, a COBOL ledger) in `window`; `steps` are YAML flow
    mappings such as `{name: migrate, apply: [...], ...}`."""
    lines = [
        f"name: {name}",
        f"repo: {repo}",
        "owner: team-ledger",
        "runtime: cobol",
        "operating_model: heritage",
        "reason: mainframe ledger",
        "tests_automated: false",
        "heritage:",
        f"  windows: [{window}]",
        f"  approvals: {{required: {required}, approvers: [{', '.join(approvers)}], deadline: 2h}}",
    ]
    if steps:
        lines += ["  steps:", *(f"    - {step}" for step in steps)]
    lines.append(f'  ops_squad: {{name: ops-emea, notify: ["{notify}"]}}')
    return "\n".join(lines) + "\n"


def push_payload(repo: RepoBuilder, *, branch: str = "main", after: str | None = None) -> bytes:
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 40,
            "after": after or repo.head(),
            "repository": {"clone_url": f"file://{repo.path}"},
            "pusher": {"name": "pusher"},
        }
    ).encode()


def delivery() -> str:
    return str(uuid.uuid4())
