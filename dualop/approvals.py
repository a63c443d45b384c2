"""The approval policy of a heritage change, as pure functions over decisions.

A gate needs `required` distinct approvals (one more for an emergency change) from
the people the service's `approvals.approvers` name (directly or through a group in
`config/approvers.yaml`), before its deadline. It refuses, and records why:

- a name that is not an approver of this service;
- self-approval: the requester, or an author of any commit in the change. Approver
  handles are matched against commit authors generously, on the safe side: a handle
  counts as an author when it equals (ignoring case) the author's e-mail local part,
  the author's whole name written with dashes, or any single word of the name;
- a second decision by someone who already approved this plan;
- a decision for another plan (the branch moved on: approvals bind to the plan digest,
  and earlier ones lapse);
- a decision after the deadline.

Any accepted rejection ends the gate. Prefect OSS records no identity for whoever
resumes a run: the approver's name is self-asserted in the UI form and recorded as
such (`via="ui"`); `dualop approve --as NAME` checks the same policy before resuming.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "Decision",
    "GateStatus",
    "Ruling",
    "authors_matching",
    "evaluate",
    "gate_status",
]

Via = Literal["ui", "cli"]


@dataclass(frozen=True)
class Decision:
    decision: Literal["approve", "reject"]
    approver: str
    comment: str
    plan_digest: str
    at: datetime
    via: Via = "ui"


@dataclass(frozen=True)
class Ruling:
    accepted: bool
    reason: str  # why refused, or what the accepted decision means


@dataclass(frozen=True)
class GateStatus:
    """Where a gate stands after the accepted decisions for the current plan."""

    required: int
    approvals: tuple[str, ...] = ()
    rejected_by: Decision | None = None
    refused: tuple[tuple[Decision, str], ...] = field(default=())

    @property
    def approved(self) -> bool:
        return self.rejected_by is None and len(self.approvals) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvals))


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def authors_matching(handle: str, authors: Iterable[tuple[str, str]]) -> list[str]:
    """The commit authors (name, email) that `handle` may be (module docstring)."""
    handle = handle.lower()
    found = []
    for name, email in authors:
        local = email.split("@", 1)[0].lower()
        words = _words(name)
        if handle in {local, "-".join(words)} or handle in words:
            found.append(f"{name} <{email}>")
    return found


def evaluate(
    decision: Decision,
    *,
    eligible: frozenset[str],
    requester: str | None,
    authors: Iterable[tuple[str, str]],
    plan_digest: str,
    already_approved: Iterable[str],
    deadline: datetime,
) -> Ruling:
    """Accept or refuse one decision under the policy; the reason says which rule."""
    who = decision.approver.strip()
    if not who:
        return Ruling(False, "no approver name given; fill in `approver`")
    if decision.at >= deadline:
        return Ruling(False, f"the approval deadline {deadline.isoformat()} has passed")
    if decision.plan_digest != plan_digest:
        return Ruling(
            False,
            f"the decision is for plan {decision.plan_digest[:12]} but the change is now plan "
            f"{plan_digest[:12]} (the branch moved on); review the new change record",
        )
    if who not in eligible:
        listing = ", ".join(sorted(eligible)) or "nobody"
        return Ruling(False, f"{who!r} is not an approver of this service (approvers: {listing})")
    if decision.decision == "reject":
        return Ruling(True, f"rejected by {who}")
    if requester and who.lower() == requester.lower():
        return Ruling(False, f"self-approval: {who} requested this change")
    matches = authors_matching(who, authors)
    if matches:
        return Ruling(False, f"self-approval: {who} may be the author of {', '.join(matches)}")
    if who in set(already_approved):
        return Ruling(False, f"{who} has already approved this plan; ask another approver")
    return Ruling(True, f"approved by {who}")


def gate_status(
    decisions: Iterable[Decision],
    *,
    required: int,
    eligible: frozenset[str],
    requester: str | None,
    authors: list[tuple[str, str]],
    plan_digest: str,
    deadline: datetime,
) -> tuple[GateStatus, list[Ruling]]:
    """Replay every decision in order; returns where the gate stands and each ruling."""
    approvals: list[str] = []
    refused: list[tuple[Decision, str]] = []
    rulings = []
    rejected_by = None
    for decision in decisions:
        ruling = evaluate(
            decision,
            eligible=eligible,
            requester=requester,
            authors=authors,
            plan_digest=plan_digest,
            already_approved=approvals,
            deadline=deadline,
        )
        rulings.append(ruling)
        if not ruling.accepted:
            refused.append((decision, ruling.reason))
        elif decision.decision == "reject":
            rejected_by = decision
            break
        else:
            approvals.append(decision.approver.strip())
    status = GateStatus(required, tuple(approvals), rejected_by, tuple(refused))
    return status, rulings
