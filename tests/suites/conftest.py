"""Helpers for the trust suites (burst, faults): real Prefect servers, real processes.

Each suite starts its own `prefect server start` (SQLite in a temp folder, or a fresh
PostgreSQL database), points this process's Prefect client at it for as long as it
runs, and stops everything it started, including the flow-run processes a runner
starts in their own sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from dualop.stack import ManagedProcess, free_port, prefect_env, spawn, start_prefect_server

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- processes -------------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time in clock ticks), for every process in /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(pid: int) -> dict[int, str]:
    """The processes below `pid`, as pid -> start time (to recognise them later)."""
    table = _proc_table()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, started) in table.items():
            if ppid == parent and child not in found:
                found[child] = started
                frontier.append(child)
    return found


def kill_known(processes: Mapping[int, str], sig: int = signal.SIGKILL) -> None:
    """Signal each process of `processes` that is still the same process (start time)."""
    table = _proc_table()
    for pid, started in processes.items():
        if table.get(pid, (0, ""))[1] == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def stop_tree(process: ManagedProcess, *, sig: int = signal.SIGTERM) -> None:
    """Stop `process` (its process group), then whatever it started in other sessions
    (Prefect's runner starts each flow run in its own)."""
    below = descendants(process.proc.pid)
    process.stop(grace=15, sig=sig)
    kill_known(below)


# --- PostgreSQL ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards; yields the
    SQLAlchemy URL Prefect takes."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def _sql(statement: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- a Prefect server for a suite -------------------------------------------------------------


@dataclass
class SuiteStack:
    """A real Prefect server, its folders, and what else the suite started."""

    root: Path
    config_dir: Path
    data_dir: Path
    env: dict[str, str]
    api_url: str
    database: str
    server: ManagedProcess | None = None
    others: list[ManagedProcess] = field(default_factory=list)

    def add_service(self, name: str, yaml_text: str) -> None:
        (self.config_dir / "services" / f"{name}.yaml").write_text(yaml_text)

    def start_server(self) -> None:
        self.server = start_prefect_server(
            self.env, log_path=self.root / "logs" / "prefect-server.log", timeout=180
        )

    def stop_server(self, sig: int = signal.SIGTERM) -> None:
        if self.server is not None:
            stop_tree(self.server, sig=sig)
            self.server = None

    def spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = spawn(
            name,
            argv,
            env=self.env,
            log_path=self.root / "logs" / f"{name.replace(' ', '-')}.log",
            cwd=None,
        )
        self.others.append(process)
        return process

    def serve(self) -> ManagedProcess:
        """`dualop serve` as a child process (the runner of every deployment)."""
        return self.spawn("dualop serve", [sys.executable, "-m", "dualop.cli", "serve"])

    def wait_deployment(self, name: str, process: ManagedProcess, timeout: float = 180) -> None:
        from dualop.stack import wait_until_healthy

        wait_until_healthy(
            f"{self.api_url}/deployments/name/{name}", timeout=timeout, process=process
        )


@contextlib.contextmanager
def suite_stack(
    root: Path,
    *,
    database_url: str | None = None,
    windows: str = "windows: {}\n",
    approvers: str = "people: [alice]\n",
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[SuiteStack]:
    """Folders, a started `prefect server start`, and this process's Prefect client (and
    dualop settings) pointed at it; everything undone on exit."""
    from prefect.context import refresh_global_settings_context

    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(windows)
    (config / "approvers.yaml").write_text(approvers)
    (root / "home").mkdir()
    data = root / "data"
    env = prefect_env(data, port=free_port(), poll_seconds=1.0, database_url=database_url)
    env.update(
        DUALOP_CONFIG_DIR=str(config),
        DUALOP_LOG_FORMAT="json",
        HOME=str(root / "home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="test@dualop.invalid",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="test@dualop.invalid",
    )
    env.update(extra_env or {})
    shown = f"PostgreSQL ({database_url})" if database_url else "SQLite"
    stack = SuiteStack(root, config, data, env, env["PREFECT_API_URL"], shown)
    keys = [k for k in env if k.startswith(("PREFECT_", "DUALOP_"))]
    saved = {k: os.environ.get(k) for k in keys}
    try:
        stack.start_server()
        os.environ.update({k: env[k] for k in keys})
        refresh_global_settings_context()  # Prefect read its settings when first imported
        yield stack
    finally:
        for process in reversed(stack.others):
            stop_tree(process)
        stack.stop_server()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_global_settings_context()


# --- the webhook receiver in a thread -----------------------------------------------------------


@contextlib.contextmanager
def receiver_thread(app: Any) -> Iterator[str]:
    """Serve the Starlette `app` with real uvicorn on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def wait_until(
    check: Callable[[], Any], *, timeout: float, every: float = 0.5, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout:.0f}s")
        time.sleep(every)
