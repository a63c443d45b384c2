"""deployer_for picks the deployer; RecordingDeployer and overlaps() prove deploys serialise."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from dualop.catalog import CommandDeploy, LocalDeploy, Service
from dualop.deploy import (
    CommandDeployer,
    Deployer,
    LocalDeployer,
    RecordingDeployer,
    Release,
    deployer_for,
    overlaps,
)
from dualop.deploy.local import _locked
from dualop.exceptions import DeployError


def service(deploy: LocalDeploy | CommandDeploy) -> Service:
    return Service(
        name="web-shop",
        repo="/srv/git/web-shop",
        owner="shop",
        runtime="python",
        operating_model="digital",
        reason="test service",
        deploy=deploy,
    )


COMMAND = CommandDeploy(kind="command", deploy=["deploy.sh"], rollback=["rollback.sh"])


class TestDeployerFor:
    @pytest.mark.parametrize(
        ("deploy", "kind"),
        [
            pytest.param(LocalDeploy(), LocalDeployer, id="local"),
            pytest.param(COMMAND, CommandDeployer, id="command"),
        ],
    )
    def test_picks_the_deployer_of_the_kind(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deploy: LocalDeploy | CommandDeploy,
        kind: type,
    ) -> None:  # fmt: skip
        """deploy.kind decides the deployer; both satisfy the Deployer protocol."""
        monkeypatch.delenv("DUALOP_DEPLOY_RECORD", raising=False)
        d = deployer_for(service(deploy), deploy_root=tmp_path, keep=3)
        assert type(d) is kind and isinstance(d, Deployer)

    def test_local_gets_root_and_keep(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The local deployer is rooted at deploy_root and keeps `keep` releases."""
        monkeypatch.delenv("DUALOP_DEPLOY_RECORD", raising=False)
        d = deployer_for(service(LocalDeploy()), deploy_root=tmp_path, keep=7)
        assert isinstance(d, LocalDeployer) and d.root == tmp_path and d.keep == 7

    def test_record_env_wraps_the_deployer(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With DUALOP_DEPLOY_RECORD set, the deployer records its deploys to that file."""
        record = tmp_path / "record.jsonl"
        monkeypatch.setenv("DUALOP_DEPLOY_RECORD", str(record))
        d = deployer_for(service(LocalDeploy()), deploy_root=tmp_path / "deploy", keep=3)
        assert isinstance(d, RecordingDeployer) and isinstance(d.inner, LocalDeployer)
        tree = tmp_path / "tree"
        tree.mkdir()
        d.deploy(Release("web-shop", "1.0.0", "abc", tree))
        assert d.current_version("web-shop") == "1.0.0"
        assert d.live_dir("web-shop") == tmp_path / "deploy" / "web-shop" / "current"
        (entry,) = [json.loads(line) for line in record.read_text().splitlines()]
        assert entry["service"] == "web-shop" and entry["version"] == "1.0.0"
        assert entry["action"] == "deploy" and entry["ok"] is True
        assert entry["start"] <= entry["end"] and isinstance(entry["pid"], int)


class SlowDeployer:
    """A deployer that takes a while (and, given a barrier, waits for its peers inside)."""

    def __init__(self, *, fail: bool = False, barrier: threading.Barrier | None = None) -> None:
        self.fail = fail
        self.barrier = barrier

    def deploy(self, release: Release, *, on_line: object = None) -> None:
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        time.sleep(0.02)
        if self.fail:
            raise DeployError("boom")

    def rollback(self, release: Release, *, on_line: object = None) -> str | None:
        return None

    def current_version(self, service: str) -> str | None:
        return None

    def live_dir(self, service: str) -> Path | None:
        return None


def run_concurrently(
    deployer: RecordingDeployer, versions: list[str], tree: Path, *, lock_dir: Path | None = None
) -> None:
    """Deploy each version from its own thread, all at once (serialised by a lock if given)."""

    def one(version: str) -> None:
        release = Release("web-shop", version, "c", tree)
        if lock_dir is None:
            deployer.deploy(release)
        else:  # like the per-service concurrency limit the flows take before deploying
            with _locked(lock_dir):
                deployer.deploy(release)

    threads = [threading.Thread(target=one, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class TestOverlaps:
    def test_concurrent_deploys_are_detected(self, tmp_path: Path) -> None:
        """Deploys of one service running at the same time show up as overlapping pairs."""
        record = tmp_path / "record.jsonl"
        slow = SlowDeployer(barrier=threading.Barrier(3))
        run_concurrently(RecordingDeployer(slow, record), ["1", "2", "3"], tmp_path)
        found = overlaps(record)
        assert len(found) == 3  # every pair of the three
        assert all(a["service"] == b["service"] == "web-shop" for a, b in found)

    def test_serialised_deploys_do_not_overlap(self, tmp_path: Path) -> None:
        """Deploys serialised by a per-service lock never overlap."""
        record = tmp_path / "record.jsonl"
        recorder = RecordingDeployer(SlowDeployer(), record)
        run_concurrently(recorder, ["1", "2", "3"], tmp_path, lock_dir=tmp_path / "lock")
        assert len(record.read_text().splitlines()) == 3
        assert overlaps(record) == []

    def test_only_the_same_service_counts(self, tmp_path: Path) -> None:
        """Entries of different services at the same time are not overlaps."""
        record = tmp_path / "record.jsonl"
        rows = [
            {"service": "a", "version": "1", "start": 1.0, "end": 3.0, "pid": 1},
            {"service": "b", "version": "1", "start": 2.0, "end": 4.0, "pid": 1},
            {"service": "a", "version": "2", "start": 3.0, "end": 5.0, "pid": 2},
            {"service": "a", "version": "3", "start": 4.5, "end": 6.0, "pid": 2},
        ]
        record.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
        assert overlaps(record) == [(rows[2], rows[3])]
        assert overlaps(tmp_path / "missing.jsonl") == []

    def test_failed_deploys_are_recorded(self, tmp_path: Path) -> None:
        """A deploy that raises is still recorded, with ok false, and the error propagates."""
        record = tmp_path / "record.jsonl"
        recorder = RecordingDeployer(SlowDeployer(fail=True), record)
        with pytest.raises(DeployError, match="boom"):
            recorder.deploy(Release("web-shop", "1", "c", tmp_path))
        assert json.loads(record.read_text())["ok"] is False
