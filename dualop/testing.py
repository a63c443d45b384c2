"""Helpers for tests (dualop's own and yours): real git repositories with controlled history.

    repo = RepoBuilder.init(tmp_path / "svc")
    first = repo.commit("feat: first", when=datetime(2026, 1, 5, tzinfo=UTC), author="Ada Lovelace")
    repo.tag("svc/v0.1.0", when=datetime(2026, 1, 6, tzinfo=UTC))
    repo.revert(first, when=datetime(2026, 1, 7, tzinfo=UTC))
    repo.switch("feature", create=True); repo.commit("feat: x"); repo.switch("main")
    repo.merge("feature", when=datetime(2026, 1, 8, tzinfo=UTC))

Dates are set through `GIT_AUTHOR_DATE` / `GIT_COMMITTER_DATE` (and the tagger date of
annotated tags), so history-based measurements are reproducible. The repository accepts
pushes to its checked-out branch (`receive.denyCurrentBranch updateInstead`), so it can
serve as a service's origin. `fast_history` writes thousands of commits in one
`git fast-import` call, for benchmarks.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["RepoBuilder"]


def _email(author: str) -> str:
    return author.lower().replace(" ", ".") + "@example.test"


@dataclass
class RepoBuilder:
    """A non-bare repository in `path` whose history a test writes commit by commit."""

    path: Path
    branch: str = "main"

    @classmethod
    def init(cls, path: Path, *, branch: str = "main") -> RepoBuilder:
        path.mkdir(parents=True, exist_ok=True)
        builder = cls(path, branch)
        builder.git("init", "--quiet", f"--initial-branch={branch}")
        builder.git("config", "receive.denyCurrentBranch", "updateInstead")
        # Commits on two branches both append to CHANGES: let merges keep both lines.
        (path / ".git" / "info").mkdir(parents=True, exist_ok=True)
        (path / ".git" / "info" / "attributes").write_text("CHANGES merge=union\n")
        return builder

    def git(self, *args: str, when: datetime | None = None, author: str | None = None) -> str:
        """Run `git *args` here (argv, no shell) with optional dates and author; stdout."""
        env = dict(os.environ)
        if when is not None:
            stamp = when.astimezone(UTC).isoformat()
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = stamp
        if author is not None:
            env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = author
            env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = _email(author)
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", "Test Author")
            env.setdefault(f"GIT_{role}_EMAIL", "test@example.test")
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode:
            output = (proc.stderr.strip() + "\n" + proc.stdout.strip()).strip()
            raise RuntimeError(f"git {' '.join(args)} failed: {output}")
        return proc.stdout.strip()

    def commit(
        self,
        message: str,
        *,
        when: datetime | None = None,
        author: str = "Test Author",
        files: dict[str, str] | None = None,
    ) -> str:
        """Commit `files` (default: append the message to CHANGES); returns the sha."""
        for name, text in (files or {}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if not files:
            with (self.path / "CHANGES").open("a") as handle:
                handle.write(message + "\n")
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message, when=when, author=author)
        return self.head()

    def tag(self, name: str, *, when: datetime | None = None, ref: str = "HEAD") -> None:
        """An annotated tag on `ref` (tagger date = `when`)."""
        self.git("tag", "-a", name, ref, "-m", f"release {name}", when=when, author="Release Bot")

    def revert(self, sha: str, *, when: datetime | None = None, author: str = "Test Author") -> str:
        """`git revert` of `sha` (subject `Revert "..."`); returns the new sha."""
        self.git("revert", "--no-edit", sha, when=when, author=author)
        return self.head()

    def switch(self, branch: str, *, create: bool = False) -> None:
        """Check out `branch` (created at HEAD with `create`)."""
        self.git("switch", "--quiet", *(["-c"] if create else []), branch)

    def merge(
        self, branch: str, *, when: datetime | None = None, author: str = "Test Author"
    ) -> str:
        """A merge commit of `branch` into the current branch (`--no-ff`); returns its sha."""
        message = f"Merge branch '{branch}'"
        self.git("merge", "--no-ff", "--quiet", "-m", message, branch, when=when, author=author)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def fast_history(
        self,
        count: int,
        *,
        start: datetime,
        step_seconds: int,
        authors: list[str],
        tag_every: int = 0,
        tag_prefix: str = "v",
    ) -> None:
        """`count` commits (one file changed each) in a single `git fast-import`; a tag
        `<tag_prefix>1.0.N` every `tag_every` commits (lightweight, dated by its commit)."""
        base = int(start.timestamp())
        lines: list[str] = []
        for i in range(count):
            author = authors[i % len(authors)]
            stamp = f"{base + i * step_seconds} +0000"
            message = f"fix: change {i}\n"
            lines += [
                f"commit refs/heads/{self.branch}",
                f"mark :{i + 1}",
                f"author {author} <{_email(author)}> {stamp}",
                f"committer {author} <{_email(author)}> {stamp}",
                f"data {len(message.encode())}",
                message.rstrip("\n"),
            ]
            if i:
                lines.append(f"from :{i}")
            content = f"{i}\n"
            lines += [
                f"M 644 inline file{i % 50}.txt",
                f"data {len(content)}",
                content.rstrip("\n"),
            ]
            if tag_every and (i + 1) % tag_every == 0:
                lines += [
                    f"reset refs/tags/{tag_prefix}1.0.{(i + 1) // tag_every}",
                    f"from :{i + 1}",
                ]
            lines.append("")
        subprocess.run(
            ["git", "fast-import", "--quiet"],
            cwd=self.path,
            input=("\n".join(lines) + "\n").encode(),
            check=True,
            capture_output=True,
        )
        self.git("reset", "--hard", "--quiet", self.branch)
