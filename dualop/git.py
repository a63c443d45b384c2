"""Every git operation dualop makes, behind one class, with GitPython underneath.

- Refs, shas and tag names are validated (`dualop.refs.validate_ref`) before they reach
  git, and every call is argv-style through `repo.git` (GitPython never uses a shell).
- GitPython's errors are translated into `GitError` with a message that says what failed
  and what to do. Credentials in URLs never appear in it: `https://user:token@host`
  shows as `https://user:***@host`, and `https://token@host` as `https://***@host`.
  (Translated errors are raised `from None`: GitPython's own error carries the command
  line, which can hold the URL with its credentials.)
- History is read with ONE `git log` call (and tags with ONE `git for-each-ref` call)
  in a machine-readable format, parsed in Python: no Python object per commit
  (20,000 commits take a fraction of a second, see `tests/bench/bench_classify.py`).

**The cache clone** (`clone_or_fetch`) is a bare repository whose branches mirror the
remote's (`+refs/heads/*:refs/heads/*`, fetched with `--prune`), with the remote's tags
(`--tags --prune-tags --force`). So in a cache clone a branch name such as `main`
resolves to the remote's `main` as of the last fetch; there are no `origin/*` refs. In
a repository opened with `GitRepo.open` (a developer's clone), `main` is the local branch.

**Release trees** (`checkout`) are `git worktree add --detach` of the exact commit from
the cache: cheap (no second clone), exact (detached at the sha, nothing else checked
out), and one folder per run. Deleting the folder is enough; the next checkout prunes
the stale worktree entry.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import git
import semver

from dualop.exceptions import GitError
from dualop.logging import redact_url
from dualop.refs import validate_ref

__all__ = ["Commit", "GitRepo", "ReleaseTag", "parse_release_version", "shown_url"]

# One record per commit: fields separated by US (0x1f), records ended by RS (0x1e).
# Neither byte occurs in names, emails, dates or (real) commit messages.
_US, _RS = "\x1f", "\x1e"
_LOG_FIELDS = ["%H", "%P", "%an", "%ae", "%aI", "%cI", "%s", "%b"]
LOG_FORMAT = "%x1f".join(_LOG_FIELDS) + "%x1e"
_TAG_FIELDS = ["%(refname:strip=2)", "%(objectname)", "%(*objectname)", "%(creatordate:iso-strict)"]
_TAG_FORMAT = "%1f".join(_TAG_FIELDS)  # for-each-ref spells hex escapes %xx
_VERSION = r"(?P<version>\d+\.\d+\.\d+)"
_TAG_FORM = re.compile(rf"v?{_VERSION}")
# https://token@host (a token as the user name): mask the user name too.
_HTTP_USER = re.compile(r"(?P<head>\bhttps?://)[^\s/?#@:]+@", re.IGNORECASE)


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
    parents: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body}".strip()


@dataclass(frozen=True)
class ReleaseTag:
    name: str
    version: semver.Version
    sha: str  # the commit the tag points to (peeled for annotated tags)
    tagged_at: datetime  # tagger date (annotated) or the commit's committer date (lightweight)


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
        match = _TAG_FORM.fullmatch(tag.removeprefix(f"{service}/"))
    if match is None:
        return None
    try:
        version = semver.Version.parse(match.group("version"))
    except (ValueError, IndexError, TypeError):
        return None
    if version.prerelease or version.build:
        return None
    return version


def shown_url(text: str) -> str:
    """`text` with the credentials of any URL in it masked (fit for messages and logs)."""
    return _HTTP_USER.sub(lambda m: f"{m['head']}***@", str(redact_url(text)))


def _stderr(error: git.exc.GitCommandError) -> str:
    text = str(error.stderr or "").strip().removeprefix("stderr:").strip().strip("'")
    return shown_url(" ".join(text.split()))[:400] or f"git exited with status {error.status}"


class GitRepo:
    """A local repository (usually the workspace's cache clone)."""

    def __init__(self, repo: git.Repo, *, origin: str | None = None) -> None:
        self._repo = repo
        self._origin = origin
        self.path = Path(repo.git_dir if repo.bare else repo.working_tree_dir or repo.git_dir)

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        try:
            return cls(git.Repo(path))
        except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as e:
            raise GitError(
                f"{path} is not a git repository ({type(e).__name__}); check the path"
            ) from None

    @classmethod
    def clone_or_fetch(cls, url: str, dest: Path) -> GitRepo:
        """The cache clone of `url` (a URL or a local path) in `dest`: cloned if absent,
        else fetched (branches and tags, with prune). See the module docstring."""
        shown = shown_url(url)
        if not url or url.startswith("-"):
            raise GitError(
                f"refusing repository {shown!r}: empty or starting with '-' (it would be read "
                "as an option); fix the service's `repo:` in the catalog"
            )
        fresh = not (dest / "HEAD").exists()
        if fresh and dest.exists() and any(dest.iterdir()):
            raise GitError(
                f"{dest} exists but is not a dualop cache clone; remove the folder and retry"
            )
        tmp = dest.with_name(dest.name + ".partial")
        try:
            if fresh:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
                repo = git.Repo.init(tmp, bare=True)
                repo.git.remote("add", "origin", url)
                repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/heads/*")
                repo.git.fetch("origin", "--tags", "--prune", "--quiet")
                if dest.exists():
                    dest.rmdir()  # an empty folder left by someone else
                tmp.rename(dest)
                repo = git.Repo(dest)
            else:
                repo = git.Repo(dest)
                if repo.git.config("--get", "remote.origin.url") != url:
                    repo.git.remote("set-url", "origin", url)  # the catalog's repo moved
                repo.git.fetch("origin", "--tags", "--prune", "--prune-tags", "--force", "--quiet")
        except git.exc.GitCommandError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GitError(
                f"cannot fetch {shown}: {_stderr(e)}; check that the repository exists and "
                "is reachable from this machine, and the service's `repo:` in the catalog"
            ) from None
        except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GitError(
                f"cannot use {dest} as the cache clone of {shown} ({type(e).__name__}: "
                f"{shown_url(str(e))}); remove the folder and retry"
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
        """Whether `older` is `newer` or one of its ancestors."""
        validate_ref(older)
        validate_ref(newer)
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
        """Release tags of `service`, lowest version first (one `for-each-ref` call); with
        `merged_into`, only those whose commit is reachable from it. When two tags name
        the same version (`v1.0.0` and `svc/v1.0.0`), dualop's own form sorts last."""
        merged = [f"--merged={self.resolve(merged_into)}"] if merged_into else []
        try:
            out = self._repo.git.for_each_ref(f"--format={_TAG_FORMAT}", *merged, "refs/tags")
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot list the tags of {self.path.name}: {_stderr(e)}") from None
        tags = []
        for line in out.splitlines():
            name, obj, peeled, created = (line.split(_US) + [""] * 4)[:4]
            version = parse_release_version(name, service, tag_pattern)
            if version is None or not created:
                continue
            tags.append(ReleaseTag(name, version, peeled or obj, datetime.fromisoformat(created)))
        return sorted(tags, key=lambda t: (t.version, t.name.startswith(f"{service}/"), t.name))

    def last_release(
        self, service: str, tag_pattern: str | None = None, *, reachable_from: str | None = None
    ) -> ReleaseTag | None:
        """The highest release of `service` (reachable from `reachable_from` if given)."""
        tags = self.release_tags(service, tag_pattern, merged_into=reachable_from)
        return tags[-1] if tags else None

    def commit_of_version(self, service: str, version: str) -> str | None:
        for tag in self.release_tags(service):
            if str(tag.version) == version:
                return tag.sha
        return None

    @staticmethod
    def new_tag_name(service: str, version: semver.Version | str) -> str:
        """dualop's own release tags: `<service>/vX.Y.Z`."""
        return f"{service}/v{version}"

    def create_tag(self, name: str, sha: str, message: str) -> None:
        """An annotated tag; a no-op when `name` already points at `sha`."""
        validate_ref(name)
        commit = self.resolve(sha)
        try:
            existing = str(
                self._repo.git.rev_parse("--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
            )
        except git.exc.GitCommandError:
            existing = ""
        if existing:
            if existing == commit:
                return
            raise GitError(
                f"tag {name} already exists on {existing[:12]}, not on {commit[:12]}; "
                "a released version is never moved: release a new version"
            )
        try:
            self._repo.git.tag("-a", name, commit, "-m", message)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot create tag {name}: {_stderr(e)}") from None

    def push_tag(self, name: str) -> None:
        """Push the tag `name` to origin (a rejected push, e.g. a moved tag, is a GitError)."""
        validate_ref(name)
        try:
            self._repo.git.push("origin", f"refs/tags/{name}:refs/tags/{name}", "--quiet")
        except git.exc.GitCommandError as e:
            raise GitError(
                f"cannot push tag {name} to {shown_url(self._origin or 'origin')}: "
                f"{_stderr(e)}; check write access to the repository"
            ) from None

    # --- history ------------------------------------------------------------------------

    def _log(self, *args: str) -> list[Commit]:
        try:
            out = self._repo.git.log(f"--format={LOG_FORMAT}", *args)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot read history of {self.path.name}: {_stderr(e)}") from None
        commits = []
        for raw in out.split(_RS):
            record = raw.strip("\n")
            if not record:
                continue
            sha, parents, an, ae, ad, cd, subject, body = (record.split(_US) + [""] * 8)[:8]
            parent_shas = tuple(parents.split())
            commits.append(
                Commit(
                    sha=sha,
                    author_name=an,
                    author_email=ae,
                    authored_at=datetime.fromisoformat(ad),
                    committed_at=datetime.fromisoformat(cd),
                    subject=subject,
                    body=body.strip(),
                    is_merge=len(parent_shas) > 1,
                    parents=parent_shas,
                )
            )
        return commits

    def commits_between(self, since_sha: str | None, until: str) -> list[Commit]:
        """Commits in `since..until`, newest first (all of `until` when since is None)."""
        head = self.resolve(until)
        if since_sha is None:
            return self._log(head)
        return self._log(f"{validate_ref(since_sha)}..{head}")

    def history(self, branch: str, *, since: datetime, until: datetime) -> list[Commit]:
        """Commits reachable from `branch` committed in [since, until], newest first.

        One `git log --since --until` call; git stops walking at commits older than
        `since` (tolerating a few out-of-order dates), and the bounds are then applied
        exactly in Python.
        """
        head = self.resolve(branch)
        commits = self._log(f"--since={since.isoformat()}", f"--until={until.isoformat()}", head)
        return [c for c in commits if since <= c.committed_at <= until]

    def history_off_branch(
        self, tips: Sequence[str], branch: str, *, since: datetime, until: datetime
    ) -> list[Commit]:
        """Commits reachable from `tips` (e.g. release tags on a maintenance branch) but
        not from `branch`, committed in [since, until], newest first; [] without tips."""
        if not tips:
            return []
        shas = [validate_ref(t) for t in tips]
        head = self.resolve(branch)
        window = [f"--since={since.isoformat()}", f"--until={until.isoformat()}"]
        commits = self._log(*window, *shas, "--not", head)
        return [c for c in commits if since <= c.committed_at <= until]

    def diff_stat(self, base: str | None, head: str) -> str:
        """`git diff --stat` from `base` (None: from nothing, a first release) to `head`."""
        head = self.resolve(head)
        try:
            if base is None:
                base = str(self._repo.git.hash_object("-t", "tree", os.devnull))  # empty tree
            else:
                validate_ref(base)
            return str(self._repo.git.diff("--stat", base, head))
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot compute the diff stat: {_stderr(e)}") from None

    # --- working trees ------------------------------------------------------------------

    def checkout(self, sha: str, dest: Path) -> Path:
        """A clean worktree of exactly `sha` at `dest` (which must not exist)."""
        if dest.exists():
            raise GitError(
                f"{dest} already exists; a release tree is always a fresh folder: "
                "remove it or pick another"
            )
        commit = self.resolve(sha)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._repo.git.worktree("prune")
            self._repo.git.worktree("add", "--detach", "--quiet", str(dest), commit)
        except git.exc.GitCommandError as e:
            raise GitError(f"cannot check out {commit[:12]} into {dest}: {_stderr(e)}") from None
        except OSError as e:
            raise GitError(f"cannot create {dest.parent} for a release tree: {e}") from None
        return dest

    def raw(self) -> Any:
        """The underlying `git.Repo`, for tests and benchmarks."""
        return self._repo
