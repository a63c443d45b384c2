"""Helpers for the trust suites (burst, faults): real Prefect servers, real processes.

Each suite starts its own `prefect server start` (SQLite in a temp folder, or a fresh
PostgreSQL database), points this process's Prefect client at it for as long as it
runs, and stops everything it started, including the flow-run processes a runner
starts in their own sessions.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualop.stack import ManagedProcess, spawn, start_prefect_server
from tests.support import (
    activated,
    for_prefect,
    stack_env,
    stop_tree,
)

__all__ = [
    "SuiteStack",
    "suite_stack",
    "wait_until",
]


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
    dualop settings) pointed at it; everything undone on exit. `database_url`: a
    PostgreSQL database (`postgres_database`) instead of SQLite."""
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(windows)
    (config / "approvers.yaml").write_text(approvers)
    prefect_db = for_prefect(database_url) if database_url else None
    env = stack_env(root, config, database_url=prefect_db, **dict(extra_env or {}))
    shown = f"PostgreSQL ({database_url})" if database_url else "SQLite"
    stack = SuiteStack(root, config, root / "data", env, env["PREFECT_API_URL"], shown)
    try:
        stack.start_server()
        with activated(env):
            yield stack
    finally:
        for process in reversed(stack.others):
            stop_tree(process)
        stack.stop_server()


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
