"""check_health: HTTP 2xx or a command exiting 0, retried with capped backoff within a budget."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from dualop.catalog import CommandHealth, HttpHealth
from dualop.exceptions import HealthCheckFailed
from dualop.health import HealthResult, check_health
from tests.support import http_server


@dataclass
class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@dataclass
class Script:
    """What the test server answers: one status a request, the last one repeated."""

    statuses: list[int]
    delay: float = 0.0
    seen: list[str] = field(default_factory=list)

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script([200])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.seen.append(self.path)
            if script.delay:
                time.sleep(script.delay)
            status = script.next_status()
            body = b"ok" if status < 300 else b"not ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with http_server(Handler) as port:
        yield f"http://127.0.0.1:{port}", script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, *, budget: float = 10, timeout: float = 2) -> HttpHealth:
    return HttpHealth(
        http=url, timeout=timedelta(seconds=timeout), budget=timedelta(seconds=budget)
    )


class TestHttpHealth:
    def test_passes_after_server_errors(self, server: tuple[str, Script], tmp_path: Path) -> None:
        """500, 500, 200: passes on the third attempt after backing off 0.5 s then 1 s."""
        url, script = server
        script.statuses[:] = [500, 500, 200]
        t = FakeTime()
        lines: list[str] = []
        result = check_health(
            http(f"{url}/healthz"), cwd=tmp_path, sleep=t.sleep, clock=t.clock, on_line=lines.append
        )
        assert isinstance(result, HealthResult) and result.attempts == 3
        assert t.sleeps == [0.5, 1.0]
        assert script.seen == ["/healthz"] * 3
        assert (
            str(result) == f"healthy: GET {url}/healthz answered 200 OK after 3 attempt(s) in 1.5s"
        )
        assert "answered 500 Internal Server Error (attempt 1); retrying in 0.5s" in lines[0]

    @pytest.mark.parametrize(
        ("budget", "sleeps"),
        [
            pytest.param(10, [0.5, 1.0, 2.0, 4.0], id="budget-10s"),
            pytest.param(30, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0], id="capped-at-5s"),
            pytest.param(0.4, [], id="budget-below-first-backoff"),
        ],
    )
    def test_always_failing_spends_the_budget(
        self, server: tuple[str, Script], tmp_path: Path, budget: float, sleeps: list[float]
    ) -> None:
        """Always 503: backoff doubles up to 5 s, stops within the budget, says why."""
        url, script = server
        script.statuses[:] = [503]
        t = FakeTime()
        with pytest.raises(HealthCheckFailed) as info:
            check_health(http(url, budget=budget), cwd=tmp_path, sleep=t.sleep, clock=t.clock)
        assert t.sleeps == sleeps and sum(t.sleeps) <= budget
        message = str(info.value)
        assert f"GET {url}" in message
        assert "503 Service Unavailable" in message
        assert f"after {len(sleeps) + 1} attempt(s)" in message

    def test_connection_refused(self, tmp_path: Path) -> None:
        """Nothing listening: fails naming the connection error."""
        t = FakeTime()
        url = f"http://127.0.0.1:{free_port()}/health"
        with pytest.raises(HealthCheckFailed, match="ConnectError") as info:
            check_health(http(url, budget=2), cwd=tmp_path, sleep=t.sleep, clock=t.clock)
        assert url in str(info.value) and "after 3 attempt(s)" in str(info.value)

    def test_slow_answer_is_a_failed_attempt(
        self, server: tuple[str, Script], tmp_path: Path
    ) -> None:
        """An answer slower than the per-attempt timeout counts as a failure."""
        url, script = server
        script.delay = 0.5
        t = FakeTime()
        with pytest.raises(HealthCheckFailed, match=r"no answer within 0\.1s"):
            check_health(
                http(url, budget=1, timeout=0.1), cwd=tmp_path, sleep=t.sleep, clock=t.clock
            )

    def test_credentials_are_masked(self, server: tuple[str, Script], tmp_path: Path) -> None:
        """A password in the URL never appears in the result or the error."""
        url, script = server
        secret_url = url.replace("http://", "http://probe:hunter2@")
        t = FakeTime()
        assert "hunter2" not in str(check_health(http(secret_url), cwd=tmp_path))
        script.statuses[:] = [500]
        with pytest.raises(HealthCheckFailed) as info:
            check_health(http(secret_url, budget=1), cwd=tmp_path, sleep=t.sleep, clock=t.clock)
        assert "hunter2" not in str(info.value) and "probe:***@" in str(info.value)


class TestCommandHealth:
    def test_passes_once_the_command_exits_zero(self, tmp_path: Path) -> None:
        """The command is retried until it exits 0 (here: on its third run)."""
        counter = tmp_path / "count"
        code = (
            "import os, pathlib, sys; p = pathlib.Path('count'); "
            "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
            "print('try', n, os.environ['SVC']); sys.exit(0 if n >= 3 else 1)"
        )
        spec = CommandHealth(command=[sys.executable, "-c", code], budget=timedelta(seconds=10))
        t = FakeTime()
        lines: list[str] = []
        result = check_health(
            spec,
            cwd=tmp_path,
            env={"SVC": "web"},
            sleep=t.sleep,
            clock=t.clock,
            on_line=lines.append,
        )
        assert result.attempts == 3 and counter.read_text() == "3"
        assert "try 3 web" in lines and "exited 0" in str(result)

    def test_failing_command(self, tmp_path: Path) -> None:
        """A command that keeps failing ends in HealthCheckFailed with its status and output."""
        code = "import sys; print('db unreachable'); sys.exit(2)"
        spec = CommandHealth(command=[sys.executable, "-c", code], budget=timedelta(seconds=2))
        t = FakeTime()
        with pytest.raises(HealthCheckFailed) as info:
            check_health(spec, cwd=tmp_path, sleep=t.sleep, clock=t.clock)
        assert "exited with status 2 (db unreachable)" in str(info.value)
        assert "after 3 attempt(s)" in str(info.value)

    def test_command_timeout(self, tmp_path: Path) -> None:
        """A command slower than its timeout is a failed attempt."""
        spec = CommandHealth(
            command=[sys.executable, "-c", "import time; time.sleep(30)"],
            timeout=timedelta(seconds=0.3),
            budget=timedelta(seconds=0.4),
        )
        t = FakeTime()
        with pytest.raises(HealthCheckFailed, match=r"timed out after 0\.3s"):
            check_health(spec, cwd=tmp_path, sleep=t.sleep, clock=t.clock)

    def test_attempt_timeout_is_cut_to_the_budget(self, tmp_path: Path) -> None:
        """An attempt never outlives the budget: a 30 s timeout in a 0.6 s budget waits 0.6 s."""
        spec = CommandHealth(
            command=[sys.executable, "-c", "import time; time.sleep(30)"],
            timeout=timedelta(seconds=30),
            budget=timedelta(seconds=0.6),
        )
        t = FakeTime()  # the real clock: the attempt's own duration is what counts here
        with pytest.raises(HealthCheckFailed, match=r"timed out after 0\.6s, after 1 attempt"):
            check_health(spec, cwd=tmp_path, sleep=t.sleep, clock=time.monotonic)
        assert t.sleeps == []

    def test_missing_program_fails_at_once(self, tmp_path: Path) -> None:
        """A program that does not exist is not retried."""
        spec = CommandHealth(command=["dualop-no-such-check"], budget=timedelta(seconds=60))
        t = FakeTime()
        with pytest.raises(HealthCheckFailed, match="dualop-no-such-check"):
            check_health(spec, cwd=tmp_path, sleep=t.sleep, clock=t.clock)
        assert t.sleeps == []
