"""Every git operation dualop makes, behind one class, with GitPython underneath.

- Refs and tag names are validated (`dualop.refs.validate_ref`) before they reach git.
- GitPython's errors are translated into `GitError` with a message that says what failed
  and what to do; credentials in URLs (`https://user:token@host`) never appear in it.
- History is read with ONE `git log` / `git for-each-ref` call in a machine-readable
  format through `repo.git`, parsed in Python: no Python object per commit (20,000
  commits take milliseconds, see `tests/bench/bench_classify.py`).

The cache clone is a bare clone whose branches are mirrored as local branches
(`+refs/heads/*:refs/heads/*`) and whose tags are fetched too, so a branch name
resolves to the remote's branch as of the last fetch. Release trees are checked out
with `git worktree add --detach` from the cache: cheap, exact, and isolated per run.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import semver
import structlog

from dualop.exceptions import GitError
from dualop.logging import redact_url
from dualop.refs import validate_ref

__all__ = ["Commit", "GitRepo", "ReleaseTag", "parse_release_version"]

log = structlog.get_logger(__name__)

_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_US, _RS = "\x1f", "\x1e"  # unit and record separators: never in names or subjects
_LOG_FORMAT = _US.join(["%H", "%P", "%an", "%ae", "%aI", "%cI", "%s", "%b"]) + _RS
_VERSION = r"(?P<version>\d+\.\d+\.\d+)"
_TAG_FORMS = [re.compile(rf"^v?{_VERSION}$")]


@dataclass(frozen=True)
class Commit:
    sha: str
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    subject: str
    body: str = ""
    is_merge: bool = False

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body}".strip()


@dataclass(frozen=True)
class ReleaseTag:
    name: str
    version: semver.Version
    sha: str
    tagged_at: datetime


def parse_release_version(
    tag: str, service: str, pattern: str | None = None
) -> semver.Version | None:
    """The release version a tag names, or None when it is not a release of `service`.

    Forms: `v1.2.3`, `1.2.3`, `<service>/v1.2.3` (and `<service>/1.2.3`); pre-releases
    (`1.2.0rc1`, `v2.0.0-beta.1`) and build metadata are not releases. A `pattern` (the
    service's `tag_pattern`, with a `(?P<version>...)` group) replaces the forms.
    """
    if pattern is not None:
        match = re.fullmatch(pattern, tag)
    else:
        name = tag.removeprefix(f"{service}/")
        match = next((m for f in _TAG_FORMS if (m := f.fullmatch(name))), None)
    if match is None:
        return None
    try:
        version = semver.Version.parse(match.group("version"))
    except (ValueError, IndexError):
        return None
    if version.prerelease or version.build:
        return None
    return version


def _redacted(url: str) -> str:
    return str(redact_url(url))


class GitRepo:
    """A local repository (usually the workspace's cache clone)."""

    def __init__(self, repo: git.Repo, *, origin: str | None = None) -> None:
        self._repo = repo
        self._origin = origin
        self.path = Path(repo.git_dir if repo.bare else repo.working_tree_dir or repo.git_dir)

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        try:
            return cls(git.Repo(path))
        except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as e:
            raise GitError(
                f"{path} is not a git repository ({type(e).__name__}); check the path"
            ) from e

    @classmethod
    def clone_or_fetch(cls, url: str, dest: Path) -> GitRepo:
        """The cache clone of `url` in `dest`: cloned if absent, else fetched (with prune)."""
        shown = _redacted(url)
        try:
            if not (dest / "HEAD").exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                repo = git.Repo.init(tmp, bare=True)
                repo.git.remote("add", "origin", url)
                repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/heads/*")
                repo.git.fetch("origin", "--tags", "--prune", "--quiet")
                tmp.rename(dest)
            repo = git.Repo(dest)
            repo.git.fetch("origin", "--tags", "--prune", "--prune-tags", "--force", "--quiet")
        except git.exc.GitCommandError as e:
            raise GitError(
                f"cannot fetch {shown}: {_stderr(e)}; check that the repository exists and "
                "is reachable from this machine, and the service's `repo:` in the catalog"
            ) from None
        return cls(repo, origin=url)

    # --- refs ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The full commit sha of a branch, tag or (short) sha."""
        validate_ref(ref)
        try:
            return str(
                self._repo.git.rev_parse("--verify", "--end-of-options", f"{ref}^{{commit}}")
            )
        except git.exc.GitCommandError:
            raise GitError(
                f"{ref!r} is not a branch, tag or commit of {self.path.name}; "
                "check the name (and that it was pushed)"
            ) from None

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self._repo.git.merge_base("--is-ancestor", older, newer)
        except git.exc.GitCommandError as e:
            if e.status == 1:
                return False
            raise GitError(f"cannot compare {older[:12]} and {newer[:12]}: {_stderr(e)}") from None
        return True

    # --- release tags -------------------------------------------------------------------

    def release_tags(
        self, service: str, tag_pattern: str | None = None, *, merged_into: str | None = None
    ) -> list[ReleaseTag]:
        """Release tags of `service`, oldest version first (one `for-each-ref` call);
        with `merged_into`, only those whose commit is reachable from it."""
        fmt = _US.join(
            [
                "%(refname:strip=2)",
                "%(objectname)",
                "%(*objectname)",
                "%(creatordate:iso-strict)",
                "%(*committerdate:iso-strict)",
                "%(committerdate:iso-strict)",
            ]
        )
        merged = [f"--merged={self.resolve(merged_into)}"] if merged_into else []
        out = self._repo.git.for_each_ref(f"--format={fmt}", *merged, "refs/tags")
        tags = []
        for line in out.splitlines():
            name, obj, peeled, created, _, _ = (line.split(_US) + [""] * 6)[:6]
            version = parse_release_version(name, service, tag_pattern)
            if version is None:
                continue
            tags.append(ReleaseTag(name, version, peeled or obj, _date(created)))
        return sorted(tags, key=lambda t: (t.version, t.name.startswith(f"{service}/")))

    def last_release(
        self, service: str, tag_pattern: str | None = None, *, reachable_from: str | None = None
    ) -> ReleaseTag | None:
        tags = self.release_tags(service, tag_pattern, merged_into=reachable_from)
        return tags[-1] if tags else None

    def commit_of_version(self, service: str, version: str) -> str | None:
        for tag in self.release_tags(service):
            if str(tag.version) == version:
                return tag.sha
        return None

    @staticmethod
    def new_tag_name(service: str, version: semver.Version | str) -> str:
        return f"{service}/v{version}"

    def create_tag(self, name: str, sha: str, message: str) -> None:
        """An annotated tag; a no-op when `name` already points at `sha`."""
        validate_ref(name)
        existing = [t for t in self._repo.tags if t.name == name]
        if existing:
            if existing[0].commit.hexsha == sha:
                return
            raise GitError(
                f"tag {name} already exists on {existing[0].commit.hexsha[:12]}, not on "
                f"{sha[:12]}; a released version is never moved: release a new version"
            )
        try:
            self._repo.git.tag("-a", name, sha, "-m", message)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot create tag {name}: {_stderr(e)}") from None

    def push_tag(self, name: str) -> None:
        validate_ref(name)
        try:
            self._repo.git.push("origin", f"refs/tags/{name}:refs/tags/{name}", "--quiet")
        except git.exc.GitCommandError as e:
            raise GitError(
                f"cannot push tag {name} to {_redacted(self._origin or 'origin')}: {_stderr(e)}; "
                "check write access to the repository"
            ) from None

    # --- history ------------------------------------------------------------------------

    def _log(self, *args: str) -> list[Commit]:
        try:
            out = self._repo.git.log(f"--format={_LOG_FORMAT}", *args)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot read history of {self.path.name}: {_stderr(e)}") from None
        commits = []
        for raw in out.split(_RS):
            record = raw.strip("\n")
            if not record:
                continue
            sha, parents, an, ae, ad, cd, subject, body = (record.split(_US) + [""] * 8)[:8]
            commits.append(
                Commit(sha, an, ae, _date(ad), _date(cd), subject, body.strip(), " " in parents)
            )
        return commits

    def commits_between(self, since_sha: str | None, until: str) -> list[Commit]:
        """Commits in `since..until`, newest first (all of `until` when since is None)."""
        head = self.resolve(until)
        return self._log(f"{since_sha}..{head}" if since_sha else head)

    def history(self, branch: str, *, since: datetime, until: datetime) -> list[Commit]:
        """Commits on `branch` committed in [since, until], newest first (one call)."""
        head = self.resolve(branch)
        commits = self._log(f"--since={since.isoformat()}", f"--until={until.isoformat()}", head)
        return [c for c in commits if since <= c.committed_at <= until]

    def diff_stat(self, base: str | None, head: str) -> str:
        head = self.resolve(head)
        try:
            if base is None:
                return str(self._repo.git.show("--stat", "--format=", head))
            return str(self._repo.git.diff("--stat", base, head))
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot compute the diff stat: {_stderr(e)}") from None

    # --- working trees ------------------------------------------------------------------

    def checkout(self, sha: str, dest: Path) -> Path:
        """A clean worktree of exactly `sha` at `dest` (which must not exist)."""
        if dest.exists():
            raise GitError(f"{dest} already exists; a release tree is always a fresh folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        commit = self.resolve(sha)
        try:
            self._repo.git.worktree("prune")
            self._repo.git.worktree("add", "--detach", "--quiet", str(dest), commit)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot check out {commit[:12]} into {dest}: {_stderr(e)}") from None
        return dest

    def raw(self) -> Any:
        """The underlying `git.Repo`, for tests and benchmarks."""
        return self._repo


def _date(text: str) -> datetime:
    if not text:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(text)


def _stderr(error: git.exc.GitCommandError) -> str:
    text = str(error.stderr or error).strip().removeprefix("stderr:").strip().strip("'")
    return str(redact_url(" ".join(text.split())))[:400] or f"git exited with {error.status}"
