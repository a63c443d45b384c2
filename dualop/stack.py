"""The local stack: a Prefect server, the served deployments and the webhook receiver.

`dualop up` (and `make up`) runs three child processes under one supervisor:

    prefect server start        SQLite under <data dir>/prefect (or PostgreSQL when
                                PREFECT_API_DATABASE_CONNECTION_URL says so)
    dualop serve                the route, paved-road, migration-window and migration
                                deployments, polling for runs every ~1 s
    dualop webhook              the receiver on --webhook-port

The same helpers start a server for the end-to-end tests and the benchmarks, so what is
tested is what users run. The Prefect environment is built here, in one place:
`prefect_env()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import structlog

from dualop.exceptions import DualopError
from dualop.settings import Settings

__all__ = [
    "ManagedProcess",
    "Stack",
    "StackError",
    "free_port",
    "prefect_env",
    "start_prefect_server",
    "wait_until_healthy",
]

log = structlog.get_logger(__name__)


class StackError(DualopError):
    """A process of the local stack would not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prefect_env(
    data_dir: Path,
    *,
    port: int,
    poll_seconds: float = 1.0,
    database_url: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for every process of the stack (server, runner, receiver, CLI).

    - `PREFECT_SERVER_API_PORT` and `PREFECT_UI_API_URL`, not `--port`: with `--port`
      alone the UI keeps calling 4200.
    - Results persisted by default under the data folder: a suspended migration resumes
      from the top and its earlier tasks come back from these results.
    - `database_url` (or an inherited `PREFECT_API_DATABASE_CONNECTION_URL`) switches the
      server to PostgreSQL; otherwise SQLite under `<data dir>/prefect`.
    """
    data_dir = data_dir.resolve()
    env = dict(os.environ if base is None else base)
    api = f"http://127.0.0.1:{port}/api"
    env.update(
        {
            "PREFECT_HOME": str(data_dir / "prefect"),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_API_URL": api,
            "PREFECT_UI_API_URL": api,
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOCAL_STORAGE_PATH": str(data_dir / "results"),
            "PREFECT_RUNNER_POLL_FREQUENCY": str(max(1, round(poll_seconds))),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_COLORS": "false",
            # The ephemeral fallback would start a second, private server: never wanted.
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
            "DUALOP_DATA_DIR": str(data_dir),
        }
    )
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


@dataclass
class ManagedProcess:
    """A child process of the stack, stopped with SIGTERM then SIGKILL."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, *, grace: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (fault tests)."""
        self.stop(grace=10, sig=signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn(
    name: str, argv: list[str], *, env: Mapping[str, str], log_path: Path | None, cwd: Path | None
) -> ManagedProcess:
    """Start `argv` in its own process group; output to `log_path` (or inherited)."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=out if log_path is not None else None,
            stderr=subprocess.STDOUT if log_path is not None else None,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            out.close()
    log.debug("dualop.stack.spawned", process=name, pid=proc.pid)
    return ManagedProcess(name, proc, log_path)


def wait_until_healthy(
    url: str, *, timeout: float = 60.0, process: ManagedProcess | None = None
) -> None:
    """Poll `url` until it answers 2xx; fail early if `process` dies meanwhile."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise StackError(
                f"{process.name} exited with status {process.proc.returncode} before it was "
                f"healthy; its log ends with:\n{process.tail()}"
            )
        try:
            if httpx.get(url, timeout=2.0).is_success:
                return
        except httpx.HTTPError as e:
            last = type(e).__name__
        time.sleep(0.25)
    name = process.name if process else url
    raise StackError(f"{name} was not healthy at {url} after {timeout:.0f}s ({last})")


def start_prefect_server(
    env: Mapping[str, str], *, log_path: Path | None = None, timeout: float = 90.0
) -> ManagedProcess:
    """`prefect server start` with `env` (from `prefect_env`), waited for until healthy."""
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    # With its services on: the scheduler fires window schedules and pause expiry runs.
    argv = [sys.executable, "-m", "prefect", "server", "start"]
    server = spawn("prefect server", argv, env=env, log_path=log_path, cwd=None)
    try:
        wait_until_healthy(f"{env['PREFECT_API_URL']}/health", timeout=timeout, process=server)
    except BaseException:  # not healthy in time, or interrupted: never leave it behind
        server.stop()
        raise
    return server


@dataclass
class Stack:
    """The processes `dualop up` supervises; stopped in reverse order."""

    processes: list[ManagedProcess] = field(default_factory=list)

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def first_dead(self) -> ManagedProcess | None:
        return next((p for p in self.processes if not p.alive()), None)

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        try:
            yield self
        finally:
            self.stop()


# --- dualop up --------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def webhook_secret(settings: Settings) -> str:
    """The configured GitHub secret, or one generated once for the local stack (0600 file)."""
    if settings.webhook.github_secret is not None:
        return settings.webhook.github_secret.get_secret_value()
    path = settings.data_dir / "webhook-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def demo_push(settings: Settings, secret: str, service: str = "storefront-web") -> str | None:
    """A signed GitHub push for the head of a demo repo, as a copy-paste curl command."""
    from dualop.catalog import load_catalog
    from dualop.webhooks import github_signature

    catalog = load_catalog(settings.config_dir)
    if service not in catalog.services or catalog.services[service].repo_is_url:
        return None
    svc = catalog.services[service]
    head = subprocess.run(
        ["git", "rev-parse", svc.branch], cwd=svc.repo, capture_output=True, text=True, check=False
    ).stdout.strip()
    if not head:
        return None
    body = json.dumps(
        {
            "ref": f"refs/heads/{svc.branch}",
            "before": "0" * 40,
            "after": head,
            "repository": {"full_name": f"demo/{service}", "clone_url": f"file://{svc.repo}"},
            "pusher": {"name": "newcomer"},
            "head_commit": {"id": head},
        }
    ).encode()
    path = settings.data_dir.resolve() / "demo-push.json"
    path.write_bytes(body)
    return (
        f"curl -i -X POST http://127.0.0.1:{settings.webhook_port}/webhooks/github \\\n"
        "  -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \\\n"
        f"  -H 'X-GitHub-Delivery: {uuid.uuid4()}' \\\n"
        f"  -H 'X-Hub-Signature-256: {github_signature(secret.encode(), body)}' \\\n"
        f"  --data-binary @{path}"
    )


def _wait_for_deployment(env: Mapping[str, str], name: str, process: ManagedProcess) -> None:
    url = f"{env['PREFECT_API_URL']}/deployments/name/{name}"
    wait_until_healthy(url, timeout=120, process=process)


def up(settings: Settings, *, now: datetime) -> int:
    """Run the whole local stack until Ctrl-C (module docstring); 1 if a process dies."""
    from dualop.catalog import load_catalog
    from dualop.demo import ensure_demo

    data = settings.data_dir.resolve()
    for port, flag in (
        (settings.prefect_port, "--prefect-port"),
        (settings.webhook_port, "--webhook-port"),
    ):
        if not _port_free(port):
            raise StackError(f"port {port} is already in use; stop what uses it or pass {flag}")
    if settings.demo:
        for repo in ensure_demo(settings.config_dir, now):
            print(f"created demo repository {repo}")
    load_catalog(settings.config_dir)  # a broken catalog stops here, with every problem
    secret = webhook_secret(settings)
    env = prefect_env(data, port=settings.prefect_port, poll_seconds=settings.runner_poll_seconds)
    env.update(
        DUALOP_CONFIG_DIR=str(settings.config_dir.resolve()),
        DUALOP_PREFECT_PORT=str(settings.prefect_port),
        DUALOP_WEBHOOK_PORT=str(settings.webhook_port),
        DUALOP_WEBHOOK__GITHUB_SECRET=secret,
    )
    logs = data / "logs"
    stack = Stack()

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    with stack.running():
        try:
            print(f"starting the Prefect server (SQLite under {data / 'prefect'}) ...", flush=True)
            stack.add(start_prefect_server(env, log_path=logs / "prefect-server.log"))
            cli = [sys.executable, "-m", "dualop.cli"]
            serving = stack.add(
                spawn(
                    "dualop serve", [*cli, "serve"], env=env, log_path=logs / "serve.log", cwd=None
                )
            )
            hook = stack.add(
                spawn(
                    "dualop webhook",
                    [*cli, "webhook"],
                    env=env,
                    log_path=logs / "webhook.log",
                    cwd=None,
                )
            )
            if settings.demo:
                inbox = ["ops-inbox", "--out", str(data / "ops-inbox.jsonl")]
                stack.add(
                    spawn(
                        "demo ops inbox",
                        [sys.executable, "-m", "dualop.demo", *inbox],
                        env=env,
                        log_path=logs / "ops-inbox.log",
                        cwd=None,
                    )
                )
            wait_until_healthy(f"http://127.0.0.1:{settings.webhook_port}/healthz", process=hook)
            _wait_for_deployment(env, "route/route", serving)
            print(_banner(settings, data, demo_push(settings, secret)), flush=True)
            while (dead := stack.first_dead()) is None:
                time.sleep(1)
            print(
                f"\n{dead.name} stopped (status {dead.proc.returncode}); its log ends with:\n"
                f"{dead.tail()}",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0


def _banner(settings: Settings, data: Path, curl: str | None) -> str:
    lines = [
        "",
        "dualop is up.",
        f"  Prefect UI      http://127.0.0.1:{settings.prefect_port}",
        f"  webhooks        http://127.0.0.1:{settings.webhook_port}/webhooks/github (and gitlab)",
        f"  logs            {data / 'logs'}",
        f"  audit log       {data / 'audit.jsonl'}",
        *(
            [f"  ops inbox       {data / 'ops-inbox.jsonl'} (the demo squad's hand-overs)"]
            if settings.demo
            else []
        ),
        "",
    ]
    if curl:
        lines += ["Release the demo digital service with a signed GitHub push:", "", curl, ""]
    lines += [
        "Or: .venv/bin/dualop release storefront-web   |   .venv/bin/dualop release ledger-core",
        "Heritage approvals: .venv/bin/dualop approvals, or Resume in the run's page in the UI.",
        "Ctrl-C stops everything; `make up` again reuses the data.",
    ]
    return "\n".join(lines)
