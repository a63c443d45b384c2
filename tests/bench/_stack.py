"""Shared helpers for the dualop benchmarks (`bench_webhook.py`, `bench_overhead.py`).

Not a test module (no `test_` prefix, so pytest does not collect it). Everything a
benchmark starts is registered on one `contextlib.ExitStack` and undone in reverse
order when the script ends, fails, times out (SIGALRM) or is interrupted (Ctrl-C,
SIGTERM): child processes and whatever they started, the Prefect server, the
PostgreSQL database, the temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from dualop.stack import (  # noqa: E402  # after the sys.path line above
    ManagedProcess,
    spawn,
    start_prefect_server,
    wait_until_healthy,
)
from tests.e2e.helpers import FINAL  # noqa: E402
from tests.support import (  # noqa: E402
    activated,
    for_prefect,
    postgres_database,
    stack_env,
    stop_tree,
)

__all__ = [
    "FINAL",
    "BenchStack",
    "BenchTimeout",
    "bench_stack",
    "bounded",
    "header",
    "percentile",
    "read_flow_run",
    "summary",
    "wait_final",
]


class BenchTimeout(Exception):
    """The benchmark ran past its --time-limit."""


# --- statistics and the header ---------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """The `pct` percentile, linearly interpolated between the closest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, p95) of `samples`; NaN for none."""
    if not samples:
        return float("nan"), float("nan")
    return statistics.median(samples), percentile(samples, 95)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def header(title: str, *, database: str) -> str:
    import prefect

    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"== {title} ==",
            f"machine   nproc={len(os.sched_getaffinity(0))} ({_cpu_model()}), "
            f"load average at start {load}",
            f"software  Prefect {prefect.__version__}, Python {platform.python_version()}, "
            f"{git.stdout.strip()}",
            f"database  {database}",
        ]
    )


# --- bounded runs and clean exits -------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise BenchTimeout


def _ignore_signals() -> None:
    """From here on the script only cleans up: a second Ctrl-C must not cut that short."""
    signal.alarm(0)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def bounded(seconds: int) -> Iterator[contextlib.ExitStack]:
    """An ExitStack for everything the benchmark starts, undone on any exit.

    SIGTERM is turned into KeyboardInterrupt and SIGALRM (after `seconds`) into
    BenchTimeout, so `finally` blocks and the stack's callbacks always run. Signals
    are ignored while cleaning up.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.alarm(max(1, seconds))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            yield stack
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"\nload average at the end {load}; ran {time.monotonic() - started:.0f}s")
        except BenchTimeout:
            print(f"\nstopped: the benchmark ran past --time-limit {seconds}s", file=sys.stderr)
            raise SystemExit(3) from None
        except KeyboardInterrupt:
            print("\ninterrupted: cleaning up ...", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            _ignore_signals()  # before the stack's callbacks run


# --- the stack -----------------------------------------------------------------------------


@dataclass
class BenchStack:
    """A real Prefect server and the folders of one benchmark run."""

    root: Path
    config_dir: Path
    data_dir: Path
    env: dict[str, str]
    api_url: str
    database: str
    exits: contextlib.ExitStack

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start a child process (log under root/logs), stopped with the stack."""
        log = self.root / "logs" / f"{name.replace(' ', '-')}.log"
        process = spawn(name, argv, env=env or self.env, log_path=log, cwd=cwd)
        self.exits.callback(stop_tree, process)
        return process

    def log_of(self, name: str) -> Path:
        return self.root / "logs" / f"{name.replace(' ', '-')}.log"

    def wait_deployment(self, name: str, process: ManagedProcess, timeout: float = 180) -> None:
        wait_until_healthy(
            f"{self.api_url}/deployments/name/{name}", timeout=timeout, process=process
        )


def bench_stack(
    exits: contextlib.ExitStack,
    *,
    database: str,
    prefix: str,
    title: str,
    keep_logs: Path | None = None,
) -> BenchStack:
    """Print the header; a temp folder, optional PostgreSQL database, a started
    `prefect server start`, and this process's Prefect client pointed at it. All undone
    by `exits`."""
    root = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix=f"{prefix}-")))
    if keep_logs is not None:  # runs after every process stopped, before the folder goes
        exits.callback(shutil.copytree, root / "logs", keep_logs, dirs_exist_ok=True)
    database_url = None
    if database == "postgres":
        database_url = exits.enter_context(postgres_database(prefix.replace("-", "_")))
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text("windows: {}\n")
    (config / "approvers.yaml").write_text("people: [alice]\n")
    data = root / "data"
    env = stack_env(
        root,
        config,
        database_url=for_prefect(database_url) if database_url else None,
        author="Bench Author",
        # Log each 503 the API answers (SQLite "database is locked"): the benchmarks count
        # them; Prefect's client retries them silently.
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
    )
    shown = (
        f"PostgreSQL ({database_url})"
        if database_url
        else f"SQLite ({data / 'prefect' / 'prefect.db'})"
    )
    print(header(title, database=shown), flush=True)
    from dualop.logging import configure_logging

    configure_logging(fmt="console", level="warning")  # not dualop.stack's debug lines
    t0 = time.perf_counter()
    # It stops the server itself when the wait for health fails or is interrupted.
    server = start_prefect_server(env, log_path=root / "logs" / "prefect-server.log", timeout=180)
    exits.callback(stop_tree, server)
    print(f"prefect server healthy in {time.perf_counter() - t0:.1f}s", flush=True)
    exits.enter_context(activated(env))
    return BenchStack(root, config, data, env, env["PREFECT_API_URL"], shown, exits)


# --- reading runs ---------------------------------------------------------------------------


def read_flow_run(run_id: str | UUID) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(run_id)))


def wait_final(run_id: str | UUID, *, timeout: float) -> Any:
    """Poll the run until it is final; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run = read_flow_run(run_id)
        if run.state is not None and run.state.type.value in FINAL:
            return run
        if time.monotonic() > deadline:
            state = run.state.name if run.state else None
            raise TimeoutError(f"flow run {run_id} still {state} after {timeout:.0f}s")
        time.sleep(0.2)


def seconds_between(start: datetime, end: datetime | None) -> float:
    return float("nan") if end is None else (end - start).total_seconds()
