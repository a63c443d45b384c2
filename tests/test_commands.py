"""run_command: argv, streamed output, a bounded tail, timeouts that end the whole tree."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dualop import commands
from dualop.commands import TAIL_LINES, CommandNotFound, CommandResult, run_command
from dualop.exceptions import CommandFailed

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-u", "-c", textwrap.dedent(code)]


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int) -> bool:
    for _ in range(100):
        if gone(pid):
            return True
        time.sleep(0.05)
    return False


class TestRunCommand:
    def test_streams_lines_in_order(self, tmp_path: Path) -> None:
        """stdout and stderr lines reach on_line merged, in the order they were written."""
        seen: list[str] = []
        result = run_command(
            py("""
                import sys
                for i in range(120):
                    (sys.stdout if i % 2 else sys.stderr).write(f"line {i}\\n")
                    (sys.stdout if i % 2 else sys.stderr).flush()
            """),
            what="build",
            cwd=tmp_path,
            timeout=30,
            on_line=seen.append,
        )
        assert seen == [f"line {i}" for i in range(120)]
        assert isinstance(result, CommandResult) and result.returncode == 0

    def test_tail_is_bounded(self, tmp_path: Path) -> None:
        """Only the last TAIL_LINES lines are kept."""
        result = run_command(
            py("for i in range(500): print(i)"), what="build", cwd=tmp_path, timeout=30
        )
        assert result.output_tail.splitlines() == [str(i) for i in range(500 - TAIL_LINES, 500)]

    def test_runs_in_cwd_with_merged_env(self, tmp_path: Path) -> None:
        """The child runs in cwd and sees the parent's environment plus `env`."""
        seen: list[str] = []
        run_command(
            py(
                "import os; print(os.getcwd()); print(os.environ['EXTRA']); print('PATH' in os.environ)"
            ),
            what="build",
            cwd=tmp_path,
            env={"EXTRA": "yes"},
            timeout=30,
            on_line=seen.append,
        )
        assert seen == [str(tmp_path.resolve()), "yes", "True"]

    def test_non_zero_exit_fails_with_tail(self, tmp_path: Path) -> None:
        """A non-zero exit raises CommandFailed carrying the status and the last lines."""
        argv = py("import sys; print('compiling'); print('error: boom'); sys.exit(3)")
        with pytest.raises(CommandFailed) as info:
            run_command(argv, what="build", cwd=tmp_path, timeout=30)
        err = info.value
        assert err.returncode == 3 and not err.timed_out and err.argv == argv
        assert err.output_tail == "compiling\nerror: boom"
        assert "build" in str(err) and "exited with status 3" in str(err) and "boom" in str(err)

    def test_secrets_in_output_are_masked(self, tmp_path: Path) -> None:
        """URL credentials in output are masked in on_line and in the tail."""
        seen: list[str] = []
        with pytest.raises(CommandFailed) as info:
            run_command(
                py("print('push to https://ci:hunter2@git.example.com/x.git'); exit(1)"),
                what="push",
                cwd=tmp_path,
                timeout=30,
                on_line=seen.append,
            )
        assert seen == ["push to https://ci:***@git.example.com/x.git"]
        assert "hunter2" not in str(info.value) and "hunter2" not in info.value.output_tail

    def test_timeout_kills_the_process_group(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On timeout the child and its grandchild (even one ignoring SIGTERM) are killed."""
        monkeypatch.setattr(commands, "TERM_GRACE_S", 0.3)
        pidfile = tmp_path / "grandchild.pid"
        grandchild = (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        )
        argv = py(f"""
            import subprocess, sys, time
            p = subprocess.Popen([sys.executable, "-c", {grandchild!r}])
            open({str(pidfile)!r}, "w").write(str(p.pid))
            print("started", flush=True)
            time.sleep(60)
        """)
        seen: list[str] = []
        with pytest.raises(CommandFailed) as info:
            run_command(argv, what="deploy", cwd=tmp_path, timeout=1.0, on_line=seen.append)
        assert info.value.timed_out and "timed out" in str(info.value)
        assert seen == ["started"]
        grandchild_pid = int(pidfile.read_text())
        assert wait_gone(grandchild_pid), "the grandchild survived the timeout"

    def test_timeout_of_a_command_that_never_stops_printing(self, tmp_path: Path) -> None:
        """A command printing without pause still times out (the deadline is checked per line)."""
        argv = py("while True: print('still going', flush=True)")
        with pytest.raises(CommandFailed) as info:
            run_command(argv, what="deploy", cwd=tmp_path, timeout=0.5)
        assert info.value.timed_out
        assert info.value.output_tail.splitlines()[-1] == "still going"

    @pytest.mark.parametrize(
        ("sleep", "timeout", "timed_out"),
        [
            pytest.param(0.3, 20, False, id="finishes-after-closing-its-output"),
            pytest.param(60, 0.5, True, id="times-out-after-closing-its-output"),
        ],
    )
    def test_command_that_closes_its_output(
        self, tmp_path: Path, sleep: float, timeout: float, timed_out: bool
    ) -> None:
        """A command that closes stdout and stderr (`exec >log 2>&1`) is waited for, not killed."""
        done = tmp_path / "done"
        argv = py(f"""
            import os, time
            print("redirecting", flush=True)
            os.close(1); os.close(2)
            time.sleep({sleep})
            open({str(done)!r}, "w").write("ok")
        """)
        if timed_out:
            with pytest.raises(CommandFailed) as info:
                run_command(argv, what="deploy", cwd=tmp_path, timeout=timeout)
            assert info.value.timed_out and info.value.output_tail == "redirecting"
            assert not done.exists()
        else:
            result = run_command(argv, what="deploy", cwd=tmp_path, timeout=timeout)
            assert result.returncode == 0 and result.output_tail == "redirecting"
            assert done.read_text() == "ok"

    def test_output_held_open_by_a_background_child(self, tmp_path: Path) -> None:
        """A command that exits 0 while a child it started keeps the pipe open still returns."""
        pidfile = tmp_path / "bg.pid"
        argv = py(f"""
            import subprocess, sys
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            open({str(pidfile)!r}, "w").write(str(p.pid))
            print("done")
        """)
        try:
            result = run_command(argv, what="deploy", cwd=tmp_path, timeout=20)
            assert result.returncode == 0 and result.output_tail == "done"
        finally:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)

    @pytest.mark.parametrize(
        ("argv", "why"),
        [
            pytest.param(["dualop-no-such-program-xyz"], "no such program", id="missing-program"),
            pytest.param(["./tool"], "permission denied", id="not-executable"),
        ],
    )
    def test_program_that_cannot_run(self, tmp_path: Path, argv: list[str], why: str) -> None:
        """A program that cannot start raises CommandNotFound (a CommandFailed) saying why."""
        tool = tmp_path / "tool"  # a script without the execute bit
        tool.write_text("#!/bin/sh\necho hi\n")
        tool.chmod(0o644)
        with pytest.raises(CommandFailed) as info:
            run_command(argv, what="build", cwd=tmp_path, timeout=5)
        assert isinstance(info.value, CommandNotFound)
        assert why in str(info.value) and argv[0] in str(info.value)
        assert "catalog" in str(info.value)

    def test_missing_working_folder(self, tmp_path: Path) -> None:
        """A cwd that does not exist is reported as such, not as a missing program."""
        with pytest.raises(CommandNotFound, match=r"working folder .* does not exist"):
            run_command([PY, "-c", "pass"], what="build", cwd=tmp_path / "nope", timeout=5)
