"""Test infrastructure shared by the end-to-end tests, the trust suites, the scale-out
test and the benchmarks: the environment of a real stack, processes and what they
started, fresh PostgreSQL databases, an ops-squad inbox and the receiver under uvicorn.

Plain helpers, no fixtures: each suite decides the scope of what it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dualop.stack import ManagedProcess, free_port, prefect_env

__all__ = [
    "PG_HOST",
    "activated",
    "descendants",
    "for_prefect",
    "http_server",
    "kill_known",
    "ops_inbox",
    "postgres_database",
    "receiver_thread",
    "stack_env",
    "stop_tree",
]

PG_HOST = "127.0.0.1:5432"
PG_ADMIN = f"postgresql://postgres@{PG_HOST}/postgres"


# --- the environment of a stack ------------------------------------------------------------


def stack_env(
    root: Path,
    config_dir: Path,
    *,
    database_url: str | None = None,
    author: str = "Test Author",
    **extra: str,
) -> dict[str, str]:
    """What `dualop up` gives its processes (`prefect_env` on a free port, data under
    `root/data`), with the catalog at `config_dir`, JSON logs, a private HOME and a git
    identity, plus `extra`."""
    home = root / "home"
    home.mkdir(exist_ok=True)
    env = prefect_env(root / "data", port=free_port(), poll_seconds=1.0, database_url=database_url)
    email = f"{author.split(maxsplit=1)[0].lower()}@dualop.invalid"
    env.update(
        DUALOP_CONFIG_DIR=str(config_dir),
        DUALOP_LOG_FORMAT="json",
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=author,
        GIT_COMMITTER_EMAIL=email,
    )
    env.update(extra)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect warns otherwise
    return env


@contextlib.contextmanager
def activated(env: Mapping[str, str]) -> Iterator[None]:
    """This process's Prefect client and dualop settings pointed at the stack of `env`
    (its PREFECT_*, DUALOP_* and GIT_* variables) while inside; restored afterwards."""
    from prefect.context import refresh_global_settings_context

    keys = [k for k in env if k.startswith(("PREFECT_", "DUALOP_", "GIT_"))]
    saved = {k: os.environ.get(k) for k in keys}
    try:
        os.environ.update({k: env[k] for k in keys})
        refresh_global_settings_context()  # Prefect read its settings when first imported
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_global_settings_context()


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
    (Prefect's runner and workers start each flow run in its own)."""
    below = descendants(process.proc.pid)
    process.stop(grace=15, sig=sig)
    kill_known(below)


# --- PostgreSQL ------------------------------------------------------------------------------


async def _admin(*statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
    except OSError as e:
        raise AssertionError(
            f"PostgreSQL is not reachable at {PG_HOST} ({e}); this test needs it "
            "(trust auth, user postgres)"
        ) from None
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards (open
    connections ended); yields `postgresql://postgres@host/name`. Prefect's server takes
    it as `postgresql+asyncpg://…`."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@{PG_HOST}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def for_prefect(url: str) -> str:
    """A `postgresql://` URL in the form Prefect's server takes (SQLAlchemy + asyncpg)."""
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


# --- HTTP endpoints --------------------------------------------------------------------------


@contextlib.contextmanager
def ops_inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint for apprise's `json://` (an ops squad's notifications).

    Yields the apprise URL and the list the JSON bodies it receives are appended to.
    """
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    with http_server(Handler) as port:
        yield f"json://127.0.0.1:{port}/", received


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on a free 127.0.0.1 port from a thread (a thread per request, so a
    slow answer does not hold up the next); yields the port; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def receiver_thread(app: Any) -> Iterator[str]:
    """Serve the ASGI `app` with real uvicorn on a free port, its lifespan run as
    `dualop webhook` runs it; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
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
