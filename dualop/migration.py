"""The heritage migration's domain: change record, pre-flight, and steps with rollback.

Plain Python over the catalog, git and the window check; `flows/migration.py` wraps
each part in a named Prefect task and puts the approval gate between pre-flight and
apply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dualop.catalog import MigrationStep, Service
from dualop.durations import format_duration
from dualop.exceptions import CommandFailed
from dualop.git import Commit

__all__ = [
    "ChangeRecord",
    "StepReport",
    "apply_steps",
    "plan_digest",
    "preflight_problems",
]


def plan_digest(commit: str, steps: list[MigrationStep]) -> str:
    """What an approval binds to: the exact commit and the exact steps (sha256, hex)."""
    payload = json.dumps(
        {"commit": commit, "steps": [s.model_dump(mode="json") for s in steps]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ChangeRecord:
    """Everything an approver and the ops squad need to know about one heritage change."""

    service: str
    owner: str
    commit: str
    previous_release: str | None
    version: str
    commits: tuple[Commit, ...]
    diff_stat: str
    steps: tuple[MigrationStep, ...]
    digest: str
    risk: tuple[str, ...]
    requested_by: str | None
    emergency: bool = False
    emergency_reason: str | None = None

    @property
    def estimate(self) -> timedelta:
        return sum((s.estimate for s in self.steps), timedelta())

    def lead_time(self, live_at: datetime) -> float | None:
        """Seconds from the oldest change in the record to `live_at`."""
        first = min((c.committed_at for c in self.commits), default=None)
        return (live_at - first).total_seconds() if first else None

    @property
    def authors(self) -> list[tuple[str, str]]:
        return sorted({(c.author_name, c.author_email) for c in self.commits})

    def rollback_plan(self) -> list[str]:
        return [
            f"{i}. `{s.name}`: `{' '.join(s.rollback)}`"
            for i, s in enumerate(reversed(self.steps), start=1)
        ] + [
            f"{len(self.steps) + 1}. switch the deploy back to {self.previous_release or '(none)'}"
        ]

    def markdown(self) -> str:
        kind = "EMERGENCY change" if self.emergency else "Change"
        lines = [
            f"# {kind} record: {self.service} {self.version}",
            "",
            f"- **commit** `{self.commit[:12]}` (plan digest `{self.digest[:16]}`)",
            f"- **previous release** {self.previous_release or 'none'}",
            f"- **owner** {self.owner}; **requested by** {self.requested_by or 'the window'}",
            f"- **estimated duration** {format_duration(self.estimate)}",
        ]
        if self.emergency:
            lines.append(f"- **emergency reason** {self.emergency_reason}")
        lines += ["", "## Changes", "", "| commit | author | date | subject |", "|---|---|---|---|"]
        for c in self.commits:
            lines.append(
                f"| `{c.sha[:10]}` | {c.author_name} | {c.committed_at:%Y-%m-%d} | "
                f"{c.subject.replace('|', '/')} |"
            )
        lines += ["", "## Diff stat", "", "```", self.diff_stat.strip() or "(no changes)", "```"]
        lines += ["", "## Migration steps", "", "| # | step | estimate | apply | verify |"]
        lines.append("|---|---|---|---|---|")
        for i, s in enumerate(self.steps, start=1):
            verify = " ".join(s.verify) if s.verify else "-"
            lines.append(
                f"| {i} | {s.name} | {format_duration(s.estimate)} | `{' '.join(s.apply)}` | "
                f"`{verify}` |"
            )
        lines += ["", "## Rollback plan", "", *self.rollback_plan(), "", "## Risk", ""]
        lines += [f"- {r}" for r in self.risk]
        return "\n".join(lines)


def preflight_problems(
    *,
    service: Service,
    record: ChangeRecord,
    window_open: bool,
    frozen_by: str | None,
    time_left: timedelta | None,
    emergency: bool,
    unreachable_targets: list[str],
) -> list[str]:
    """Why the change must not start now; empty when it may. Nothing is applied either way."""
    problems = []
    if frozen_by:
        problems.append(f"freeze {frozen_by!r} is in force; no change may start during it")
    if not window_open and not emergency:
        problems.append("no release window is open for this service")
    if window_open and not emergency and time_left is not None and time_left < record.estimate:
        problems.append(
            f"the window has {format_duration(time_left)} left but the steps need "
            f"{format_duration(record.estimate)}; wait for a longer window or split the change"
        )
    heritage = service.heritage
    if heritage is None or not heritage.ops_squad.notify:
        problems.append("no ops squad with notification targets: nobody to hand over to")
    problems.extend(f"ops squad target not reachable: {t}" for t in unreachable_targets)
    return problems


@dataclass
class StepReport:
    """What happened to each step, for the record, the audit log and the artifact."""

    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    rollback_failed: list[str] = field(default_factory=list)
    failed_step: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_step is None and self.reason is None


StepRunner = Callable[[str, MigrationStep, list[str]], None]
"""(stage, step, argv) → None; raises `CommandFailed` when the command fails."""


def apply_steps(
    steps: list[MigrationStep],
    *,
    run: StepRunner,
    clock: Callable[[], datetime],
    closes_at: datetime | None,
    on_event: Callable[[str, str, str | None], None] | None = None,
) -> StepReport:
    """Apply then verify each step in order; on a failure, or when the next step's estimate
    no longer fits before `closes_at`, roll back every applied step in reverse order.

    A step whose `apply` failed is rolled back too (it may have half-applied); its
    rollback must therefore be safe to run on a step that did not complete.
    """
    report = StepReport()
    notify = on_event or (lambda kind, step, detail: None)
    started: list[MigrationStep] = []
    for step in steps:
        now = clock()
        if closes_at is not None and now + step.estimate > closes_at:
            report.failed_step = step.name
            report.reason = (
                f"step {step.name!r} needs {format_duration(step.estimate)} but the window "
                f"closes at {closes_at.isoformat()}; stopped before it"
            )
            notify("step.skipped", step.name, report.reason)
            break
        started.append(step)
        try:
            run("apply", step, step.apply)
            if step.verify:
                run("verify", step, step.verify)
        except CommandFailed as e:
            report.failed_step = step.name
            report.reason = f"step {step.name!r} failed: {e}"
            notify("step.failed", step.name, str(e))
            break
        report.applied.append(step.name)
        notify("step.applied", step.name, None)
    if report.ok:
        return report
    for step in reversed(started):
        try:
            run("rollback", step, step.rollback)
            report.rolled_back.append(step.name)
            notify("step.rolled_back", step.name, None)
        except CommandFailed as e:
            report.rollback_failed.append(step.name)
            notify("step.rollback_failed", step.name, str(e))
    return report


def state_dir(data_dir: Path, service: str) -> Path:
    """Where a service's migration commands may keep state (`$DUALOP_STATE_DIR`)."""
    return data_dir / "state" / service
