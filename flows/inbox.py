"""The approver's inbox and the CLI's decisions, over Prefect's API and the audit log.

`dualop approvals` lists the migration runs suspended at the approval gate, with what
the gate asked for (`approval.requested` in the audit log) and the approvals accepted
so far for the current plan. `dualop approve/reject RUN --as NAME` checks the decision
against the same policy the flow applies, records a refusal in the audit log and exits
2, or resumes the run with the decision (the flow records it when it runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from dualop.approvals import Decision, evaluate
from dualop.audit import AuditLog
from dualop.exceptions import ApprovalRefused
from flows.prefect_api import active_runs, read_run, resume

__all__ = ["decide", "pending_approvals"]


def _gate(audit: AuditLog, run_id: str) -> tuple[Any, list[str]]:
    """The latest gate request of a run, and the approvals accepted for its plan."""
    requested = [e for e in audit.entries(kinds=["approval.requested"]) if e.run_id == run_id]
    if not requested:
        return None, []
    gate = requested[-1]
    digest = gate.data["plan_digest"]
    approvals = [
        str(e.data["approver"])
        for e in audit.entries(kinds=["approval.decision"])
        if e.run_id == run_id
        and e.data.get("plan_digest") == digest
        and e.data.get("decision") == "approve"
        and e.data.get("accepted")
    ]
    return gate, approvals


def pending_approvals(audit: AuditLog) -> list[dict[str, Any]]:
    items = []
    for run in active_runs("migration", None):
        if run.waiting_for != "approval":
            continue
        gate, approvals = _gate(audit, run.id)
        if gate is None:
            continue
        items.append(
            {
                "flow_run_id": run.id,
                "service": gate.service,
                "plan_digest": gate.data["plan_digest"],
                "approvals": approvals,
                "required": gate.data["required"],
                "deadline": gate.data["deadline"],
                "emergency": bool(gate.data.get("emergency")),
            }
        )
    return items


def decide(
    audit: AuditLog,
    run_id: str,
    *,
    decision: Literal["approve", "reject"],
    approver: str,
    comment: str,
    now: datetime,
) -> str:
    """Check a decision against the policy, then resume the run with it (module docstring)."""
    run = read_run(run_id)
    gate, approvals = _gate(audit, run_id)

    def refuse(reason: str) -> ApprovalRefused:
        audit.append(
            "approval.refused",
            service=gate.service if gate else run.parameters.get("service"),
            run_id=run_id,
            at=now,
            decision=decision,
            approver=approver,
            via="cli",
            comment=comment,
            reason=reason,
        )
        return ApprovalRefused(f"refused: {reason}")

    if run.waiting_for != "approval" or gate is None:
        raise refuse(
            f"run {run_id} is not awaiting approval (it is {run.state_name or run.state_type}); "
            "see `dualop approvals`"
        )
    ruling = evaluate(
        Decision(decision, approver, comment, gate.data["plan_digest"], now, "cli"),
        eligible=frozenset(gate.data["eligible"]),
        requester=gate.data.get("requester"),
        authors=[tuple(a) for a in gate.data.get("authors", [])],
        plan_digest=gate.data["plan_digest"],
        already_approved=approvals,
        deadline=datetime.fromisoformat(gate.data["deadline"]),
    )
    if not ruling.accepted:
        raise refuse(ruling.reason)
    resume(
        run_id,
        run_input={
            "decision": decision,
            "approver": approver,
            "comment": comment,
            "plan_digest": gate.data["plan_digest"],
            "via": "cli",
        },
    )
    return f"{ruling.reason}; run {run_id} resumed"
