"""Run one configured command: argv (never a shell), output streamed, a timeout, a clear error.

`run_command` is the only place dualop starts the commands a catalog names (build, test,
deploy, rollback, health, migration steps). The child runs in its own session (process
group), so a timeout ends the whole tree it started: SIGTERM to the group, then SIGKILL
after a short grace. stdout and stderr are merged and handed, line by line and in order, to
`on_line` in the caller's thread (so a Prefect run logger works there); the last lines are
kept for the error message, with credentials in URLs masked.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from dualop.exceptions import CommandFailed
from dualop.logging import redact_url

__all__ = ["TAIL_LINES", "CommandNotFound", "CommandResult", "run_command"]

log = structlog.get_logger(__name__)

TAIL_LINES = 50
TERM_GRACE_S = 3.0  # between SIGTERM and SIGKILL of a timed-out group
EOF_GRACE_S = 1.0  # how long to wait for the output pipe once the command has exited
_POLL_S = 0.05
_EOF = object()


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command that exited 0: its status and its last lines of output (redacted)."""

    returncode: int
    output_tail: str


class CommandNotFound(CommandFailed):
    """The program of a command does not exist or cannot be executed (nothing ran)."""

    def __init__(self, what: str, *, argv: list[str], why: str) -> None:
        super().__init__(what, argv=argv, returncode=None)
        self.args = (
            f"{what}: cannot run {argv[0]!r}: {why}; install it, or fix the command in the "
            "service's catalog file (commands are argv lists such as ['make', 'build'])",
        )


def run_command(
    argv: list[str],
    *,
    what: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    redact: Callable[[str], str] | None = None,
) -> CommandResult:
    """Run `argv` in `cwd` and return its result; raise `CommandFailed` unless it exits 0.

    The child's environment is this process's plus `env`. Each output line (without its
    newline, secrets masked by `redact`, default `dualop.logging.redact_url`) goes to
    `on_line`. After `timeout` seconds the process group gets SIGTERM, then SIGKILL, and
    `CommandFailed(timed_out=True)` is raised.
    """
    if not argv:
        raise CommandNotFound(what, argv=[""], why="the command is empty")
    proc = _start(argv, what=what, cwd=cwd, env=env)
    log.info("dualop.command.started", what=what, program=argv[0], pid=proc.pid, cwd=str(cwd))
    try:
        tail, timed_out = _pump(
            proc, what=what, timeout=timeout, on_line=on_line, mask=redact or redact_url
        )
    finally:
        if proc.poll() is None:  # an exception (KeyboardInterrupt, on_line) left it running
            _signal_group(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
    if timed_out:
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the group, if any

    output_tail = "\n".join(tail)
    if timed_out or returncode != 0:
        log.warning(
            "dualop.command.failed",
            what=what,
            program=argv[0],
            returncode=returncode,
            timed_out=timed_out,
        )
        raise CommandFailed(
            what if not timed_out else f"{what} (after {timeout:g}s)",
            argv=argv,
            returncode=returncode,
            output_tail=output_tail,
            timed_out=timed_out,
        )
    log.info("dualop.command.finished", what=what, program=argv[0], returncode=returncode)
    return CommandResult(returncode=returncode, output_tail=output_tail)


def _start(
    argv: list[str], *, what: str, cwd: Path, env: Mapping[str, str] | None
) -> subprocess.Popen[str]:
    if not cwd.is_dir():
        raise CommandNotFound(what, argv=argv, why=f"its working folder {cwd} does not exist")
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
    except FileNotFoundError:
        raise CommandNotFound(what, argv=argv, why="no such program (not on PATH?)") from None
    except PermissionError:
        raise CommandNotFound(what, argv=argv, why="permission denied (not executable?)") from None
    except OSError as e:
        raise CommandNotFound(what, argv=argv, why=e.strerror or str(e)) from None


def _pump(
    proc: subprocess.Popen[str],
    *,
    what: str,
    timeout: float,
    on_line: Callable[[str], None] | None,
    mask: Callable[[str], str],
) -> tuple[deque[str], bool]:
    """Forward output lines until the command has exited; enforce the timeout. (tail, timed_out)

    The deadline is checked between every two lines (a command that prints without pause
    still times out), and a command that closes its output early (`exec >log 2>&1`) is
    waited for, not killed, until its timeout.
    """
    lines: queue.Queue[object] = queue.Queue()
    assert proc.stdout is not None  # noqa: S101  # PIPE was asked for
    threading.Thread(
        target=_read_lines, args=(proc.stdout, lines), name=f"dualop-output-{proc.pid}", daemon=True
    ).start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    deadline = time.monotonic() + timeout
    killed_at: float | None = None
    exited_at: float | None = None
    eof = False
    while True:
        now = time.monotonic()
        if killed_at is None and now >= deadline and proc.poll() is None:
            killed_at = now
            log.warning("dualop.command.timed_out", what=what, pid=proc.pid, timeout=timeout)
            _signal_group(proc.pid, signal.SIGTERM)
        elif killed_at is not None and now - killed_at >= TERM_GRACE_S:
            _signal_group(proc.pid, signal.SIGKILL)
            killed_at = now  # keep sending until the command is gone
        if eof:
            if proc.poll() is not None:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_POLL_S)
            continue
        try:
            item = lines.get(timeout=_POLL_S)
        except queue.Empty:
            item = None
        if item is _EOF:
            eof = True
            continue
        if isinstance(item, str):
            line = mask(item)
            tail.append(line)
            if on_line is not None:
                on_line(line)
        if proc.poll() is not None:
            # The command exited but something it started may still hold the pipe open.
            exited_at = exited_at or now
            if now - exited_at >= EOF_GRACE_S:
                log.warning("dualop.command.output_left_open", what=what, pid=proc.pid)
                _drain(lines, tail, on_line=on_line, mask=mask)
                break
    return tail, killed_at is not None


def _drain(
    lines: queue.Queue[object],
    tail: deque[str],
    *,
    on_line: Callable[[str], None] | None,
    mask: Callable[[str], str],
) -> None:
    """Forward the lines already read but not yet handed on."""
    while True:
        try:
            item = lines.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, str):
            line = mask(item)
            tail.append(line)
            if on_line is not None:
                on_line(line)


def _read_lines(stream: IO[str], out: queue.Queue[object]) -> None:
    try:
        for line in stream:
            out.put(line.rstrip("\r\n"))
    except (OSError, ValueError):  # the pipe was closed under us
        pass
    finally:
        out.put(_EOF)
        stream.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)
