"""The local deployer: release folders and an atomically switched `current` link.

Layout under the deploy root, one folder a service:

    <root>/<service>/releases/<version>/        a complete copy of the release tree, with
                                                .dualop-release.json {version, commit, deployed_at}
    <root>/<service>/current -> releases/<version>
    <root>/<service>/history.json               versions that were live, oldest first
    <root>/<service>/.lock                      held while deploying or rolling back

Why `current` always names a complete release, whatever moment the process is killed at:

- a release is copied into `releases/.tmp-<version>-<random>/`, its marker written last,
  and only then renamed to `releases/<version>/` (a rename is atomic), so a folder with a
  plain version name is always complete;
- `current` is switched by making a new link `current.tmp-<random>` and `os.replace`-ing it
  over `current` (atomic too), so `current` names the old or the new release, never neither;
- pruned folders are first renamed to `releases/.trash-…`, then deleted; leftovers of a killed
  deploy (`.tmp-*`, `.trash-*`, `current.tmp-*`) are swept by the next deploy of the service.

The history is rewritten atomically and ordered against the switch so that a crash between
the two leaves a state the next call reconciles: the link is the truth about what is live,
the history only says what was live before. Files are not fsynced one by one: the guarantee
covers a killed process (the kernel keeps its writes), not a power cut mid-copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from dualop.deploy.base import LineSink, Release, check_component, fsync_dir, write_json_atomic
from dualop.exceptions import DeployError, SettingsError

__all__ = ["CURRENT", "MARKER", "LocalDeployer", "read_marker"]

log = structlog.get_logger(__name__)

MARKER = ".dualop-release.json"
CURRENT = "current"
HISTORY = "history.json"
HISTORY_LIMIT = 100
_TMP = ".tmp-"
_TRASH = ".trash-"

# Looked up at each copy, so tests can make it fail (a full disk) without touching shutil.
_copy_file: Callable[[str, str], object] = shutil.copy2


def _utcnow() -> datetime:
    return datetime.now(UTC)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a complete release folder, or None if `folder` is not one."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != folder.name:
        return None
    return data


class LocalDeployer:
    """Deploys a release by copying its tree under `root` and switching `current` to it."""

    def __init__(
        self, root: Path, keep: int = 5, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        if keep < 2:
            raise SettingsError(
                f"keep={keep} would delete the previous release that rollback needs; "
                "set DUALOP_DEPLOY__KEEP_RELEASES to 2 or more"
            )
        self.root = root
        self.keep = keep
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalDeployer(root={str(self.root)!r}, keep={self.keep})"

    # --- the protocol ---------------------------------------------------------------------

    def deploy(self, release: Release, *, on_line: LineSink | None = None) -> None:
        service = check_component("service", release.service)
        version = check_component("version", release.version)
        say = on_line or _quiet
        if not release.source_dir.is_dir():
            raise DeployError(
                f"{service} {version}: the release tree {release.source_dir} is not a folder; "
                "check out and build the release before deploying it"
            )
        home = self.root / service
        releases = home / "releases"
        try:
            releases.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DeployError(
                f"{service}: cannot create {releases}: {e.strerror}; check that the deploy root "
                f"{self.root} is writable (DUALOP_DEPLOY_ROOT)"
            ) from e
        with _locked(home):
            _sweep(home)
            live = _live(home)
            target = releases / version
            found = read_marker(target)
            if found is not None and found.get("commit") == release.commit:
                say(f"{target} already holds {version} ({release.commit[:12]}): reused")
            else:
                if target.exists() or target.is_symlink():
                    if live == version:
                        live_commit = str((found or {}).get("commit", "?"))
                        raise DeployError(
                            f"{service} {version} is live with commit {live_commit[:12]} and "
                            f"cannot be replaced in place by {release.commit[:12]}; release "
                            "the new commit under a new version"
                        )
                    say(f"{target} holds another build of {version}: replaced")
                    _discard(target)
                self._install(release, target, live=live, say=say)
            history = _reconciled(home, live)
            _switch(home, version)
            if not history or history[-1] != version:
                history.append(version)
            _write_history(home, history)
            say(f"{service} {version} is live: {home / CURRENT} -> releases/{version}")
            log.info("dualop.deploy.switched", service=service, version=version, previous=live)
            self._prune(home, history, say)

    def rollback(self, release: Release, *, on_line: LineSink | None = None) -> str | None:
        service = check_component("service", release.service)
        version = check_component("version", release.version)
        say = on_line or _quiet
        home = self.root / service
        if not home.is_dir():
            say(f"{service} has never been deployed here: nothing to roll back")
            return None
        with _locked(home):
            live = _live(home)
            if live is None:
                say(f"no release of {service} is live: nothing to roll back")
                return None
            if live != version:
                say(f"{version} is not live ({live} is): nothing to roll back")
                log.info("dualop.deploy.rollback_skipped", service=service, version=version)
                return live
            history = _reconciled(home, live)
            keep_to = len(history) - 1
            previous: str | None = None
            for i in range(len(history) - 2, -1, -1):
                candidate = history[i]
                if candidate != live and read_marker(home / "releases" / candidate) is not None:
                    previous, keep_to = candidate, i + 1
                    break
            # History first, then the link: a crash in between leaves `live` live and the
            # history reconciles back to what it was, so the rollback can simply be retried.
            _write_history(home, history[:keep_to] if previous else [])
            if previous is None:
                (home / CURRENT).unlink(missing_ok=True)
                fsync_dir(home)
                say(f"no earlier release of {service} to go back to: {version} taken down")
                log.warning("dualop.deploy.rolled_back", service=service, version=version, to=None)
                return None
            _switch(home, previous)
            say(f"{service} rolled back from {version} to {previous}")
            log.info("dualop.deploy.rolled_back", service=service, version=version, to=previous)
            return previous

    def current_version(self, service: str) -> str | None:
        return _live(self.root / check_component("service", service))

    def live_dir(self, service: str) -> Path | None:
        home = self.root / check_component("service", service)
        return home / CURRENT if _live(home) is not None else None

    # --- steps ----------------------------------------------------------------------------

    def _install(self, release: Release, target: Path, *, live: str | None, say: LineSink) -> None:
        """Copy the tree into a temporary folder, write the marker last, rename it into place."""
        releases = target.parent
        source = release.source_dir
        say(f"copying {source} to {target}")
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP}{target.name}-", dir=releases))
        try:
            shutil.copytree(
                source,
                tmp,
                symlinks=True,
                dirs_exist_ok=True,
                copy_function=_copy_file,
                ignore=lambda folder, _names: [".git"] if Path(folder) == source else [],
            )
            marker = {
                "version": target.name,
                "commit": release.commit,
                "deployed_at": self._clock().isoformat(),
            }
            with (tmp / MARKER).open("w", encoding="utf-8") as f:
                json.dump(marker, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(tmp)
            os.rename(tmp, target)
            fsync_dir(releases)
        except OSError as e:
            _discard(tmp)
            raise DeployError(
                f"{release.service} {release.version}: could not copy the release into "
                f"{releases}: {_reason(e)}; free disk space (or fix permissions) under "
                f"{self.root} and deploy again. {live or 'No release'} is still live."
            ) from e

    def _prune(self, home: Path, history: list[str], say: LineSink) -> None:
        """Keep the `keep` most recently live releases, and always the live and previous one."""
        releases = home / "releases"
        protected = set(history[-2:])
        rank = {v: i for i, v in enumerate(history)}  # the last time each version was live
        complete: list[tuple[int, str, str]] = []
        for entry in releases.iterdir():
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            marker = read_marker(entry)
            if marker is None:
                continue
            complete.append(
                (rank.get(entry.name, -1), str(marker.get("deployed_at", "")), entry.name)
            )
        complete.sort(reverse=True)
        kept = {name for _, _, name in complete[: self.keep]} | protected
        for _, _, name in complete:
            if name not in kept:
                _discard(releases / name)
                say(f"pruned old release {name}")
                log.info("dualop.deploy.pruned", service=home.name, version=name)


# --- helpers ------------------------------------------------------------------------------


def _quiet(_line: str) -> None:
    pass


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Hold the service's lock (released by the kernel if the process dies)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _live(home: Path) -> str | None:
    """The version `current` names, if it names a complete release."""
    try:
        link = os.readlink(home / CURRENT)
    except OSError:
        return None
    name = Path(link).name
    if Path(link).parent != Path("releases") or read_marker(home / "releases" / name) is None:
        return None
    return name


def _switch(home: Path, version: str) -> None:
    tmp = home / f"{CURRENT}.tmp-{uuid.uuid4().hex}"
    os.symlink(Path("releases") / version, tmp)
    try:
        os.replace(tmp, home / CURRENT)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(home)


def _reconciled(home: Path, live: str | None) -> list[str]:
    """The history, ending with the live version (a crash may have left it one short)."""
    try:
        data = json.loads((home / HISTORY).read_text(encoding="utf-8"))
        history = [v for v in data.get("live", []) if isinstance(v, str)]
    except (OSError, ValueError, AttributeError):
        history = []
    if live is not None and (not history or history[-1] != live):
        history.append(live)
    return history


def _write_history(home: Path, history: list[str]) -> None:
    write_json_atomic(home / HISTORY, {"live": history[-HISTORY_LIMIT:]})


def _discard(path: Path) -> None:
    """Remove a folder so that no half-deleted folder ever carries a version's name."""
    if not (path.exists() or path.is_symlink()):
        return
    trash = path.parent / f"{_TRASH}{path.name}-{uuid.uuid4().hex}"
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)


def _sweep(home: Path) -> None:
    """Delete what a killed deploy left behind (the caller holds the lock)."""
    for entry in (home / "releases").iterdir():
        if entry.name.startswith((_TMP, _TRASH)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    for entry in home.iterdir():
        if entry.name.startswith(f"{CURRENT}.tmp-") or (
            entry.name.startswith(f".{HISTORY}.") and entry.name.endswith(".tmp")
        ):
            entry.unlink(missing_ok=True)


def _reason(error: OSError) -> str:
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        problems = error.args[0]
        if problems:
            return f"{problems[0][2]} ({len(problems)} file(s) failed)"
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)
