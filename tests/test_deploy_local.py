"""LocalDeployer: release folders, an atomic `current` link, rollback, pruning, crashes."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dualop.deploy import LocalDeployer, Release, UnsafeReleaseName
from dualop.deploy import local as local_mod
from dualop.deploy.local import MARKER, read_marker
from dualop.exceptions import DeployError, SettingsError

SVC = "web-shop"


def make_tree(base: Path, version: str, *, files: int = 3, size: int = 16) -> Path:
    """A release tree whose every file names its version (so content can be checked)."""
    tree = base / "src" / version
    for i in range(files):
        path = tree / f"d{i % 7}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{version}:{i}:" + "x" * size)
    (tree / "app.txt").write_text(f"app {version}")
    git = tree / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    return tree


def release(tmp_path: Path, version: str, *, commit: str | None = None) -> Release:
    tree = tmp_path / "src" / version
    if not tree.exists():
        make_tree(tmp_path, version)
    return Release(SVC, version, commit or f"c{version}", tree)


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != MARKER and ".git" not in p.relative_to(root).parts
    }


def release_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / SVC / "releases").iterdir())


class TestLocalDeploy:
    def test_deploys_and_switches_current(self, tmp_path: Path) -> None:
        """Each deploy copies the tree (not .git), writes the marker and switches `current`."""
        root = tmp_path / "deploy"
        d = LocalDeployer(root)
        lines: list[str] = []
        d.deploy(release(tmp_path, "1.0.0"), on_line=lines.append)
        d.deploy(release(tmp_path, "1.0.1"))
        assert d.current_version(SVC) == "1.0.1"
        live = d.live_dir(SVC)
        assert live == root / SVC / "current"
        assert os.readlink(live) == "releases/1.0.1"
        assert (live / "app.txt").read_text() == "app 1.0.1"
        assert not (live / ".git").exists()
        assert tree_files(live) == tree_files(tmp_path / "src" / "1.0.1")
        marker = read_marker(live.resolve())
        assert marker is not None and marker["commit"] == "c1.0.1" and marker["deployed_at"]
        assert any("1.0.0 is live" in line for line in lines)

    def test_nothing_deployed(self, tmp_path: Path) -> None:
        """A service never deployed has no live version and no live folder."""
        d = LocalDeployer(tmp_path)
        assert d.current_version(SVC) is None and d.live_dir(SVC) is None

    def test_rollback_goes_back_step_by_step(self, tmp_path: Path) -> None:
        """Rollback switches back to the release live before; with none left, `current` goes."""
        d = LocalDeployer(tmp_path / "deploy")
        for v in ("1.0.0", "1.0.1", "1.0.2"):
            d.deploy(release(tmp_path, v))
        assert d.rollback(release(tmp_path, "1.0.2")) == "1.0.1"
        assert d.current_version(SVC) == "1.0.1"
        assert d.rollback(release(tmp_path, "1.0.1")) == "1.0.0"
        assert d.rollback(release(tmp_path, "1.0.0")) is None
        assert d.current_version(SVC) is None
        assert not (tmp_path / "deploy" / SVC / "current").is_symlink()

    def test_rollback_of_a_release_that_never_went_live(self, tmp_path: Path) -> None:
        """Rolling back a release that is not live changes nothing and names the live one."""
        d = LocalDeployer(tmp_path / "deploy")
        d.deploy(release(tmp_path, "1.0.0"))
        assert d.rollback(release(tmp_path, "2.0.0")) == "1.0.0"
        assert d.current_version(SVC) == "1.0.0"
        assert LocalDeployer(tmp_path / "other").rollback(release(tmp_path, "1.0.0")) is None

    def test_redeploy_after_rollback_then_rollback_again(self, tmp_path: Path) -> None:
        """The history follows what was live: deploy a, b; roll back; deploy c; roll back → a."""
        d = LocalDeployer(tmp_path / "deploy")
        d.deploy(release(tmp_path, "1.0.0"))
        d.deploy(release(tmp_path, "1.0.1"))
        d.rollback(release(tmp_path, "1.0.1"))
        d.deploy(release(tmp_path, "1.0.2"))
        assert d.rollback(release(tmp_path, "1.0.2")) == "1.0.0"

    def test_pruning_keeps_the_most_recent(self, tmp_path: Path) -> None:
        """Only the `keep` most recently live releases stay, live and previous among them."""
        root = tmp_path / "deploy"
        d = LocalDeployer(root, keep=2)
        for v in ("1.0.0", "1.0.1", "1.0.2", "1.0.3"):
            d.deploy(release(tmp_path, v))
        assert release_names(root) == ["1.0.2", "1.0.3"]
        assert d.rollback(release(tmp_path, "1.0.3")) == "1.0.2"
        d.deploy(release(tmp_path, "1.0.4"))
        assert release_names(root) == ["1.0.2", "1.0.4"]
        assert d.rollback(release(tmp_path, "1.0.4")) == "1.0.2"

    def test_pruning_ranks_by_when_live_not_by_name(self, tmp_path: Path) -> None:
        """A release made live again counts as recent, whatever its version."""
        root = tmp_path / "deploy"
        d = LocalDeployer(root, keep=3)
        for v in ("1.0.0", "1.0.1", "1.0.2", "1.0.0", "1.0.3"):
            d.deploy(release(tmp_path, v))
        assert release_names(root) == ["1.0.0", "1.0.2", "1.0.3"]

    def test_keep_below_two_is_refused(self, tmp_path: Path) -> None:
        """keep=1 would delete the release a rollback needs."""
        with pytest.raises(SettingsError, match="KEEP_RELEASES"):
            LocalDeployer(tmp_path, keep=1)


class TestLocalDeployRerun:
    def test_redeploy_after_a_crash_sweeps_leftovers(self, tmp_path: Path) -> None:
        """Leftovers of a killed deploy (half copy, temp link, trash) are removed on re-run."""
        root = tmp_path / "deploy"
        d = LocalDeployer(root)
        d.deploy(release(tmp_path, "1.0.0"))
        home = root / SVC
        half = home / "releases" / ".tmp-1.0.1-abc"
        half.mkdir()
        (half / "app.txt").write_text("half")
        (home / "releases" / ".trash-0.9.0-abc").mkdir()
        os.symlink("releases/.tmp-1.0.1-abc", home / "current.tmp-abc")
        d.deploy(release(tmp_path, "1.0.1"))
        assert d.current_version(SVC) == "1.0.1"
        assert release_names(root) == ["1.0.0", "1.0.1"]
        assert sorted(p.name for p in home.iterdir()) == [
            ".lock",
            "current",
            "history.json",
            "releases",
        ]

    def test_redeploy_of_a_complete_release_reuses_it(self, tmp_path: Path) -> None:
        """Re-running the deploy of an installed version reuses its folder."""
        d = LocalDeployer(tmp_path / "deploy")
        d.deploy(release(tmp_path, "1.0.0"))
        folder = tmp_path / "deploy" / SVC / "releases" / "1.0.0"
        inode = folder.stat().st_ino
        lines: list[str] = []
        d.deploy(release(tmp_path, "1.0.0"), on_line=lines.append)
        assert folder.stat().st_ino == inode
        assert any("reused" in line for line in lines)
        assert d.rollback(release(tmp_path, "1.0.0")) is None  # still one entry in history

    def test_other_build_of_an_old_version_is_replaced(self, tmp_path: Path) -> None:
        """A non-live folder of the same version but another commit is rebuilt."""
        d = LocalDeployer(tmp_path / "deploy")
        d.deploy(release(tmp_path, "1.0.0"))
        d.deploy(release(tmp_path, "1.0.1"))
        d.deploy(release(tmp_path, "1.0.0", commit="other"))
        marker = read_marker(tmp_path / "deploy" / SVC / "releases" / "1.0.0")
        assert marker is not None and marker["commit"] == "other"

    def test_other_build_of_the_live_version_is_refused(self, tmp_path: Path) -> None:
        """The live folder is never replaced in place."""
        d = LocalDeployer(tmp_path / "deploy")
        d.deploy(release(tmp_path, "1.0.0"))
        with pytest.raises(DeployError, match="new version"):
            d.deploy(release(tmp_path, "1.0.0", commit="other"))
        assert d.current_version(SVC) == "1.0.0"


class TestLocalDeployRefusals:
    @pytest.mark.parametrize(
        ("service", "version"),
        [
            pytest.param("../etc", "1.0.0", id="service-dotdot"),
            pytest.param(SVC, "../../x", id="version-dotdot"),
            pytest.param(SVC, "1.0/2", id="version-slash"),
            pytest.param(SVC, "", id="version-empty"),
            pytest.param(SVC, "-rf", id="version-dash"),
            pytest.param(SVC, "..", id="version-parent"),
            pytest.param(SVC, ".hidden", id="version-dot"),
            pytest.param("web shop", "1.0.0", id="service-space"),
        ],
    )
    def test_unsafe_names_are_refused(self, tmp_path: Path, service: str, version: str) -> None:
        """Service and version must be single safe folder names; nothing is written."""
        root = tmp_path / "deploy"
        tree = make_tree(tmp_path, "1.0.0")
        with pytest.raises(UnsafeReleaseName):
            LocalDeployer(root).deploy(Release(service, version, "c", tree))
        assert not root.exists()

    def test_missing_source_tree(self, tmp_path: Path) -> None:
        """A release whose tree is missing is refused with the path."""
        with pytest.raises(DeployError, match="is not a folder"):
            LocalDeployer(tmp_path).deploy(Release(SVC, "1.0.0", "c", tmp_path / "nope"))

    def test_disk_full_keeps_the_previous_release_live(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A copy failing with ENOSPC raises DeployError; the previous release stays live."""
        root = tmp_path / "deploy"
        d = LocalDeployer(root)
        d.deploy(release(tmp_path, "1.0.0"))
        make_tree(tmp_path, "1.0.1")
        calls: list[str] = []

        def full(src: str, dst: str) -> object:
            calls.append(src)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
            return local_mod.shutil.copy2(src, dst)

        monkeypatch.setattr(local_mod, "_copy_file", full)
        with pytest.raises(DeployError) as info:
            d.deploy(release(tmp_path, "1.0.1"))
        message = str(info.value)
        assert "No space left on device" in message and "free disk space" in message
        assert "1.0.0 is still live" in message
        assert d.current_version(SVC) == "1.0.0"
        assert release_names(root) == ["1.0.0"]


# Imports dualop once, then forks one deploy loop per line read; the test SIGKILLs each loop
# at a random moment (a fresh interpreter per kill would spend most of its time importing).
CHILD = textwrap.dedent("""
    import os, sys, traceback
    from pathlib import Path
    from dualop.deploy import LocalDeployer, Release

    root, sources = Path(sys.argv[1]), Path(sys.argv[2])
    versions = sorted(p.name for p in sources.iterdir())
    print("ready", flush=True)
    for line in sys.stdin:
        i = int(line)
        pid = os.fork()
        if pid == 0:  # the deployer: deploys (and sometimes rolls back) until killed
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                deployer = LocalDeployer(root, keep=3)
                while True:
                    v = versions[i % len(versions)]
                    r = Release("web-shop", v, "c" + v, sources / v)
                    deployer.deploy(r)
                    if i % 3 == 0:
                        deployer.rollback(r)
                    i += 1
            finally:
                traceback.print_exc()
                os._exit(1)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)
""")


@pytest.mark.e2e
class TestLocalDeployKilled:
    def test_current_is_always_complete_under_sigkill(self, tmp_path: Path) -> None:
        """SIGKILLed at random moments, 50 times: `current` and every release folder are whole."""
        sources = tmp_path / "src"
        for n in range(6):
            make_tree(tmp_path, f"2.0.{n}", files=300, size=4000)
        expected = {v.name: tree_files(v) for v in sources.iterdir()}
        root = tmp_path / "deploy"
        warmup = LocalDeployer(root, keep=3)
        for v in ("2.0.0", "2.0.1"):
            warmup.deploy(Release(SVC, v, "c" + v, sources / v))
        rng = random.Random(20240601)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        home = root / SVC
        switches: set[str] = set()
        mid_copy = 0  # kills that left a half-copied release behind
        zygote = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(sources)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert zygote.stdin is not None and zygote.stdout is not None
        try:
            assert zygote.stdout.readline() == "ready\n"
            for attempt in range(50):
                zygote.stdin.write(f"{attempt}\n")
                zygote.stdin.flush()
                pid = int(zygote.stdout.readline())
                time.sleep(rng.uniform(0.0, 0.15))
                os.kill(pid, signal.SIGKILL)
                status = int(zygote.stdout.readline())
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                    f"attempt {attempt}: the deploy loop ended on its own (status {status})"
                )

                live = os.readlink(home / "current")
                switches.add(live)
                target = (home / live).resolve()
                marker = read_marker(target)
                assert marker is not None, f"attempt {attempt}: current -> {live} has no marker"
                assert marker["commit"] == "c" + target.name
                assert tree_files(target) == expected[target.name], f"attempt {attempt}: {live}"
                assert LocalDeployer(root).current_version(SVC) == target.name
                for folder in (home / "releases").iterdir():
                    if folder.name.startswith(".tmp-"):
                        mid_copy += 1
                    elif not folder.name.startswith("."):
                        assert read_marker(folder) is not None, f"attempt {attempt}: {folder.name}"
                        assert tree_files(folder) == expected[folder.name]
        finally:
            zygote.stdin.close()
            zygote.wait(timeout=30)
            zygote.stdout.close()
        assert len(switches) > 1  # the kills did land after some switches
        assert mid_copy > 0  # ... and in the middle of some copies
        after = LocalDeployer(root, keep=3)
        after.deploy(Release(SVC, "2.0.5", "c2.0.5", sources / "2.0.5"))
        assert after.current_version(SVC) == "2.0.5"
        assert not [p for p in (home / "releases").iterdir() if p.name.startswith(".")]
