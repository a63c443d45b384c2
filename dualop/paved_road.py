"""The paved road's domain: what a digital release is made of, without Prefect.

The flow in `flows/paved_road.py` calls these in order; each is plain Python and is
tested on real git repositories without a server.

Opinionated defaults (the "paved" part), used when a service's catalog entry gives no
`paved_road.build` / `paved_road.test`:

- a Makefile with `build:` / `test:` targets: `make build` / `make test`;
- a Python project (pyproject.toml, setup.py or *.py files): build
  `python3 -m compileall -q .` (every module must at least parse), test
  `python3 -m pytest -q` when a tests/ folder exists, else
  `python3 -m unittest discover -q`;
- anything else: no build, no test (the run's log says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from dualop.catalog import Service
from dualop.classify import is_fix_signal
from dualop.git import Commit, GitRepo, ReleaseTag
from dualop.versioning import next_version

__all__ = [
    "ReleasePlan",
    "default_commands",
    "plan_release",
    "release_commands",
    "superseding_commit",
]


@dataclass(frozen=True)
class ReleasePlan:
    """One release of one service: the exact commit, its version and what it ships."""

    service: str
    commit: str
    version: str
    tag: str
    previous: ReleaseTag | None
    commits: tuple[Commit, ...]
    bump_reason: str
    already_tagged: bool = False

    @property
    def previous_version(self) -> str | None:
        return str(self.previous.version) if self.previous else None

    @property
    def first_commit_at(self) -> datetime | None:
        """When the oldest change in this release was committed (start of lead time)."""
        return min((c.committed_at for c in self.commits), default=None)

    @property
    def hotfix(self) -> bool:
        """The release ships a revert or a hotfix: the release before it failed."""
        return any(is_fix_signal(c) for c in self.commits)

    def lead_time(self, live_at: datetime) -> timedelta | None:
        first = self.first_commit_at
        return live_at - first if first is not None else None

    def notes_markdown(self) -> str:
        since = f"`{self.previous.name}`" if self.previous else "the first commit"
        lines = [
            f"# {self.service} {self.version}",
            "",
            f"Commit `{self.commit[:12]}`, tag `{self.tag}`; {len(self.commits)} change(s) "
            f"since {since}. Version: {self.bump_reason}.",
            "",
            "| commit | author | date | subject |",
            "|---|---|---|---|",
        ]
        for c in self.commits:
            subject = c.subject.replace("|", "\\|")
            lines.append(
                f"| `{c.sha[:10]}` | {c.author_name} | {c.committed_at:%Y-%m-%d %H:%M %Z} "
                f"| {subject} |"
            )
        return "\n".join(lines)

    def notes_table(self) -> list[dict[str, str]]:
        return [
            {
                "commit": c.sha[:10],
                "author": c.author_name,
                "date": c.committed_at.isoformat(),
                "subject": c.subject,
            }
            for c in self.commits
        ]


def plan_release(repo: GitRepo, service: Service, commit: str) -> ReleasePlan:
    """Version and release notes for `commit`: the next semver after the last release
    reachable from it, or the version already tagged on it (a re-run of a release)."""
    tags = repo.release_tags(service.name, service.tag_pattern)
    own = [t for t in tags if t.sha == commit and t.name.startswith(f"{service.name}/")]
    if own:
        tag = own[-1]
        earlier = [t for t in tags if t.version < tag.version and repo.is_ancestor(t.sha, commit)]
        previous = earlier[-1] if earlier else None
        commits = repo.commits_between(previous.sha if previous else None, commit)
        return ReleasePlan(
            service=service.name,
            commit=commit,
            version=str(tag.version),
            tag=tag.name,
            previous=previous,
            commits=tuple(commits),
            bump_reason="already tagged on this commit (a re-run of this release)",
            already_tagged=True,
        )
    previous = repo.last_release(service.name, service.tag_pattern, reachable_from=commit)
    commits = repo.commits_between(previous.sha if previous else None, commit)
    messages = [c.message for c in commits]
    version, reason = next_version(previous.version if previous else None, messages)
    return ReleasePlan(
        service=service.name,
        commit=commit,
        version=str(version),
        tag=repo.new_tag_name(service.name, version),
        previous=previous,
        commits=tuple(commits),
        bump_reason=reason,
    )


_MAKE_TARGET = re.compile(r"^(build|test)\s*:", re.MULTILINE)


def default_commands(tree: Path) -> tuple[list[str] | None, list[str] | None]:
    """The opinionated build and test commands for a checked-out tree (module docstring)."""
    makefile = tree / "Makefile"
    if makefile.is_file():
        targets = set(_MAKE_TARGET.findall(makefile.read_text(errors="replace")))
        if targets:
            build = ["make", "build"] if "build" in targets else None
            test = ["make", "test"] if "test" in targets else None
            return build, test
    python = (
        (tree / "pyproject.toml").is_file()
        or (tree / "setup.py").is_file()
        or any(tree.glob("*.py"))
    )
    if not python:
        return None, None
    test = (
        ["python3", "-m", "pytest", "-q"]
        if (tree / "tests").is_dir()
        else ["python3", "-m", "unittest", "discover", "-q"]
    )
    return ["python3", "-m", "compileall", "-q", "."], test


def release_commands(service: Service, tree: Path) -> tuple[list[str] | None, list[str] | None]:
    """The service's own build/test commands, each falling back to the default."""
    default_build, default_test = default_commands(tree)
    return (
        service.paved_road.build or default_build,
        service.paved_road.test or default_test,
    )


def superseding_commit(
    repo: GitRepo, commit: str, *, live_commit: str | None, waiting: list[str]
) -> str | None:
    """A newer commit that makes releasing `commit` pointless (or harmful), if any.

    Newer means: a descendant of `commit` on the release history. Checked against what
    is live now (never go backwards behind a newer live release) and against releases
    of the same service that are still waiting or running, whatever order their runs
    were created in.
    """
    for other in [*waiting, *([live_commit] if live_commit else [])]:
        if other != commit and repo.is_ancestor(commit, other):
            return other
    return None
