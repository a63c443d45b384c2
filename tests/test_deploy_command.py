"""CommandDeployer: the service's own argv, the release in env vars, failures kept whole."""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dualop.catalog import CommandDeploy
from dualop.deploy import CommandDeployer, Release, UnsafeReleaseName
from dualop.exceptions import DeployError

SVC = "ledger-api"
RECORDER = textwrap.dedent("""
    import json, os, sys
    keys = ["DUALOP_SERVICE", "DUALOP_VERSION", "DUALOP_COMMIT", "DUALOP_RELEASE_DIR",
            "DUALOP_PREVIOUS_VERSION"]
    entry = {k: os.environ.get(k) for k in keys}
    entry["action"] = sys.argv[2]
    entry["cwd"] = os.getcwd()
    with open(sys.argv[1], "a") as f:
        f.write(json.dumps(entry) + "\\n")
    print(sys.argv[2], os.environ["DUALOP_VERSION"])
    sys.exit(int(os.environ.get("FAIL_" + sys.argv[2].upper(), "0")))
""")


def recorder(log: Path, action: str) -> list[str]:
    return [sys.executable, "-c", RECORDER, str(log), action]


def spec(log: Path, **kw: Any) -> CommandDeploy:
    return CommandDeploy(
        kind="command", deploy=recorder(log, "deploy"), rollback=recorder(log, "rollback"), **kw
    )


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    return path


class TestCommandDeployer:
    def test_release_reaches_the_command_in_env(self, tmp_path: Path, tree: Path) -> None:
        """The deploy argv runs in the release tree with the DUALOP_* variables set."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        lines: list[str] = []
        d.deploy(Release(SVC, "1.0.0", "abc123", tree), on_line=lines.append)
        d.deploy(Release(SVC, "1.1.0", "def456", tree, previous_version="1.0.0"))
        first, second = calls(log)
        assert first == {
            "DUALOP_SERVICE": SVC,
            "DUALOP_VERSION": "1.0.0",
            "DUALOP_COMMIT": "abc123",
            "DUALOP_RELEASE_DIR": str(tree),
            "DUALOP_PREVIOUS_VERSION": "",
            "action": "deploy",
            "cwd": str(tree.resolve()),
        }
        assert second["DUALOP_PREVIOUS_VERSION"] == "1.0.0"
        assert lines == ["deploy 1.0.0"]
        assert d.current_version(SVC) == "1.1.0"
        assert d.live_dir(SVC) is None

    def test_previous_version_falls_back_to_the_release(self, tmp_path: Path, tree: Path) -> None:
        """With no tracked state, DUALOP_PREVIOUS_VERSION is the release's previous_version."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        d.deploy(Release(SVC, "2.0.0", "abc", tree, previous_version="1.9.0"))
        assert calls(log)[0]["DUALOP_PREVIOUS_VERSION"] == "1.9.0"

    def test_rollback_goes_to_the_previous_version(self, tmp_path: Path, tree: Path) -> None:
        """Rollback runs the rollback argv with the version to go back to."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        d.deploy(Release(SVC, "1.0.0", "a", tree))
        d.deploy(Release(SVC, "1.0.1", "b", tree))
        assert d.rollback(Release(SVC, "1.0.1", "b", tree)) == "1.0.0"
        last = calls(log)[-1]
        assert last["action"] == "rollback"
        assert last["DUALOP_VERSION"] == "1.0.1" and last["DUALOP_PREVIOUS_VERSION"] == "1.0.0"
        assert d.current_version(SVC) == "1.0.0"

    def test_state_survives_a_new_deployer(self, tmp_path: Path, tree: Path) -> None:
        """The live version is read back from the state file by a fresh deployer."""
        log = tmp_path / "calls.jsonl"
        CommandDeployer(spec(log), state_root=tmp_path / "state").deploy(
            Release(SVC, "3.0.0", "a", tree)
        )
        fresh = CommandDeployer(spec(log), state_root=tmp_path / "state")
        assert fresh.current_version(SVC) == "3.0.0"
        assert (tmp_path / "state" / SVC / "command-deploy.json").is_file()

    def test_failure_raises_deploy_error_with_tail(
        self, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A non-zero exit is a DeployError carrying the output; the live version is kept."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        d.deploy(Release(SVC, "1.0.0", "a", tree))
        monkeypatch.setenv("FAIL_DEPLOY", "4")
        with pytest.raises(DeployError) as info:
            d.deploy(Release(SVC, "1.0.1", "b", tree))
        message = str(info.value)
        assert "exited with status 4" in message and "deploy 1.0.1" in message
        assert "deploy.deploy" in message
        assert d.current_version(SVC) == "1.0.0"

    def test_rollback_after_a_failed_deploy(
        self, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a failed deploy the rollback still runs, aiming at the version live before."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        d.deploy(Release(SVC, "1.0.0", "a", tree))
        monkeypatch.setenv("FAIL_DEPLOY", "1")
        with pytest.raises(DeployError):
            d.deploy(Release(SVC, "1.0.1", "b", tree))
        assert d.rollback(Release(SVC, "1.0.1", "b", tree)) == "1.0.0"
        assert calls(log)[-1]["DUALOP_PREVIOUS_VERSION"] == "1.0.0"
        assert d.current_version(SVC) == "1.0.0"

    def test_failing_rollback_is_a_deploy_error(
        self, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing rollback command raises DeployError and leaves the state as it was."""
        log = tmp_path / "calls.jsonl"
        d = CommandDeployer(spec(log), state_root=tmp_path / "state")
        d.deploy(Release(SVC, "1.0.0", "a", tree))
        d.deploy(Release(SVC, "1.0.1", "b", tree))
        monkeypatch.setenv("FAIL_ROLLBACK", "2")
        with pytest.raises(DeployError, match=r"deploy\.rollback"):
            d.rollback(Release(SVC, "1.0.1", "b", tree))
        assert d.current_version(SVC) == "1.0.1"

    def test_timeout(self, tmp_path: Path, tree: Path) -> None:
        """A deploy command running past its timeout is killed and reported as timed out."""
        slow = [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"]
        d = CommandDeployer(
            CommandDeploy(
                kind="command", deploy=slow, rollback=slow, timeout=timedelta(seconds=0.5)
            ),
            state_root=tmp_path / "state",
        )
        with pytest.raises(DeployError, match="timed out") as info:
            d.deploy(Release(SVC, "1.0.0", "a", tree))
        assert "waiting" in str(info.value)
        assert d.current_version(SVC) is None

    def test_unsafe_service_name_refused(self, tmp_path: Path, tree: Path) -> None:
        """The service names a state folder, so it must be a safe name."""
        d = CommandDeployer(spec(tmp_path / "calls.jsonl"), state_root=tmp_path / "state")
        with pytest.raises(UnsafeReleaseName, match="refusing service"):
            d.deploy(Release("../x", "1.0.0", "a", tree))
