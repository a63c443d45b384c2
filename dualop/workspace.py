"""Per-service workspaces: a cached clone of the service's repo and clean release trees.

    <workspace dir>/<service>/repo.git        the cache clone, fetched before each use
    <workspace dir>/<service>/.lock           serialises git writes across processes
    <workspace dir>/<service>/trees/<id>/     one clean checkout per release run

Several runs for one service can run at once (two webhooks, a window opening), in
separate processes and, in the scale-out mode, on separate workers sharing this folder;
git's own lock files make a second concurrent fetch fail rather than wait, so every git
write to the cache goes through `locked()` (an `fcntl` lock on `.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

from dualop.catalog import Service
from dualop.git import GitRepo

__all__ = ["locked", "release_tree", "remove_tree", "service_repo"]


@contextlib.contextmanager
def locked(workspace: Path, service: str) -> Iterator[None]:
    """Hold the service's workspace lock (blocking) for the duration of the block."""
    folder = workspace / service
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def service_repo(service: Service, *, workspace: Path) -> GitRepo:
    """The service's cache clone, freshly fetched (cloned on first use)."""
    with locked(workspace, service.name):
        return GitRepo.clone_or_fetch(service.repo, workspace / service.name / "repo.git")


def release_tree(repo: GitRepo, service: str, commit: str, *, workspace: Path, run_id: str) -> Path:
    """A clean checkout of exactly `commit`, private to one run."""
    dest = workspace / service / "trees" / f"{commit[:12]}-{run_id[:8]}"
    if dest.exists():  # a re-run of the same task in the same flow run
        remove_tree(dest)
    with locked(workspace, service):
        return repo.checkout(commit, dest)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
