"""Health checks: an HTTP GET that must answer 2xx, or a command that must exit 0.

Each attempt has its own timeout, cut to what is left of the budget (but not below
`MIN_ATTEMPT_S`), so a check ends within its budget plus at most that. Failed attempts are
retried with exponential backoff (0.5 s, doubling, at most 5 s between attempts) until the
total budget is spent, then `HealthCheckFailed` names the target (credentials masked), the
last status or error and the number of attempts. `sleep` and `clock` are arguments so tests
run in no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import httpx
import structlog

from dualop.catalog import CommandHealth, HttpHealth
from dualop.commands import CommandNotFound, run_command
from dualop.exceptions import CommandFailed, HealthCheckFailed
from dualop.logging import redact_url

__all__ = ["BACKOFF_CAP_S", "BACKOFF_START_S", "MIN_ATTEMPT_S", "HealthResult", "check_health"]

log = structlog.get_logger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 5.0
MIN_ATTEMPT_S = 0.5


@dataclass(frozen=True, slots=True)
class HealthResult:
    """A passed health check: what was checked, what it answered, after how many attempts."""

    target: str
    detail: str
    attempts: int
    elapsed_s: float

    def __str__(self) -> str:
        return (
            f"healthy: {self.target} {self.detail} after {self.attempts} attempt(s) "
            f"in {self.elapsed_s:.1f}s"
        )


def check_health(
    spec: HttpHealth | CommandHealth,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_line: Callable[[str], None] | None = None,
) -> HealthResult:
    """Run the check until it passes (return a `HealthResult`) or its budget is spent (raise)."""
    attempt: Callable[[float], tuple[bool, str]]
    match spec:
        case HttpHealth():
            target = f"GET {redact_url(spec.http)}"
            attempt = _http_attempt(spec)
        case CommandHealth():
            target = f"command {spec.command[0]!r}"
            attempt = _command_attempt(spec, cwd=cwd, env=env, on_line=on_line)
        case _:
            assert_never(spec)
    say = on_line or (lambda _line: None)
    budget = spec.budget.total_seconds()
    started = clock()
    delay = BACKOFF_START_S
    attempts = 0
    while True:
        attempts += 1
        left = budget - (clock() - started)
        ok, detail = attempt(min(spec.timeout.total_seconds(), max(left, MIN_ATTEMPT_S)))
        elapsed = clock() - started
        if ok:
            log.info("dualop.health.passed", target=target, attempts=attempts, detail=detail)
            say(f"{target}: {detail} (attempt {attempts})")
            return HealthResult(target=target, detail=detail, attempts=attempts, elapsed_s=elapsed)
        if elapsed + delay > budget:
            log.warning("dualop.health.failed", target=target, attempts=attempts, detail=detail)
            raise HealthCheckFailed(
                f"health check failed: {target} did not pass within its budget of {budget:g}s; "
                f"last result: {detail}, after {attempts} attempt(s). Check the service's logs, "
                "or the health settings (URL or command, timeout, budget) in its catalog file"
            )
        say(f"{target}: {detail} (attempt {attempts}); retrying in {delay:g}s")
        log.info("dualop.health.retrying", target=target, attempts=attempts, detail=detail)
        sleep(delay)
        delay = min(delay * 2, BACKOFF_CAP_S)


def _http_attempt(spec: HttpHealth) -> Callable[[float], tuple[bool, str]]:
    def attempt(timeout: float) -> tuple[bool, str]:
        try:
            response = httpx.get(spec.http, timeout=timeout, follow_redirects=True)
        except httpx.TimeoutException:
            return False, f"no answer within {timeout:g}s"
        except httpx.HTTPError as e:
            return False, redact_url(f"{type(e).__name__}: {e}")
        status = f"answered {response.status_code} {response.reason_phrase}".rstrip()
        return response.is_success, status

    return attempt


def _command_attempt(
    spec: CommandHealth,
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    on_line: Callable[[str], None] | None,
) -> Callable[[float], tuple[bool, str]]:
    def attempt(timeout: float) -> tuple[bool, str]:
        try:
            run_command(
                spec.command,
                what="health check",
                cwd=cwd,
                env=env,
                timeout=timeout,
                on_line=on_line,
            )
        except CommandFailed as e:
            if e.timed_out:
                return False, f"timed out after {timeout:.3g}s"
            if isinstance(e, CommandNotFound):  # retrying cannot help
                raise HealthCheckFailed(f"health check failed: {e}") from e
            last = e.output_tail.splitlines()[-1:] if e.output_tail else []
            return False, f"exited with status {e.returncode}" + (f" ({last[0]})" if last else "")
        return True, "exited 0"

    return attempt
