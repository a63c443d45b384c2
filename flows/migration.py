"""The heritage migration: release windows, an approval gate, steps with rollback, hand-over.

`migration` (one heritage service):

    change record → pre-flight (readiness) → approval gate → wait for the window →
    pre-flight (window, freeze, time left) → apply + verify each step → deploy →
    health check → tag → notify the ops squad → close the record

Waiting (for approvals, for the window) is `suspend_flow_run`: the run holds no process
and survives a restart of the stack. On resume Prefect runs the flow again from the top;
the tasks before the wait come back from their persisted results and every earlier
`suspend_flow_run` returns its stored input, so the gate replays its decisions and asks
only for the next one. Each suspend's key carries the plan digest: when the branch
moves on, the digest changes, earlier approvals no longer count, and the gate asks again.

`migration-window` (scheduled at each window's opening, in the window's timezone):
resumes the runs waiting for that window and starts a `migration` for every heritage
service of the window with unreleased changes. `approval-deadlines` (every minute) ends
runs whose approval deadline passed: rejected by timeout, nothing applied.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Failed
from pydantic import Field

from dualop.approvals import Decision, gate_status
from dualop.catalog import NAME_PATTERN, OperatingModel
from dualop.classify import classify_service, is_fix_signal
from dualop.commands import run_command
from dualop.deploy import Release
from dualop.exceptions import CommandFailed, DualopError, InputError
from dualop.health import check_health
from dualop.migration import (
    ChangeRecord,
    StepReport,
    apply_steps,
    plan_digest,
    preflight_problems,
    state_dir,
)
from dualop.notify import notify, unreachable
from dualop.paved_road import plan_release
from dualop.windows import window_status
from dualop.workspace import locked, release_tree, remove_tree
from flows.common import GitRefParam, ServiceParam, Trigger, artifact_key, now, runtime

__all__ = ["ApprovalInput", "approval_deadlines", "migration", "migration_window"]

log = structlog.get_logger(__name__)

WindowParam = Annotated[
    str, Field(pattern=NAME_PATTERN, description="The release window's name in windows.yaml.")
]


class ApprovalInput(RunInput):
    """The form the Prefect UI shows in the run's Resume dialog."""

    decision: Literal["approve", "reject"] = Field(description="Approve or reject this change.")
    approver: str = Field(
        description="Your approver name from config/approvers.yaml. Self-asserted: Prefect "
        "records no identity for a resume; `dualop approve --as NAME` checks it first.",
        min_length=1,
        max_length=63,
    )
    comment: str = Field(default="", description="Why. Required for a rejection.")
    plan_digest: str = Field(
        description="The plan you reviewed (filled in for you; leave it as it is).",
        min_length=64,
        max_length=64,
    )
    via: Literal["ui", "cli"] = Field(default="ui", description="Leave as ui.")


def _run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else "local"


# --- tasks ------------------------------------------------------------------------------


@task(name="resolve-head", cache_policy=NO_CACHE, persist_result=False)
def resolve_head(service: str, ref: str | None) -> str:
    """Uncached on purpose: on every resume, a moved branch means a new plan."""
    rt = runtime()
    svc = rt.service(service)
    return str(rt.repo(svc).resolve(ref or svc.branch))


@task(name="change-record")
def change_record(
    service: str, commit: str, requested_by: str | None, emergency: bool, reason: str | None
) -> ChangeRecord:
    rt = runtime()
    svc = rt.service(service)
    heritage = rt.heritage(svc)
    repo = rt.repo(svc)
    plan = plan_release(repo, svc, commit)
    verdict = classify_service(svc, repo, at=now(), settings=rt.settings.classifier)
    steps = list(heritage.steps)
    risk = [
        f"cost of change {verdict.cost_of_change.level} ({verdict.cost_of_change.score:.2f}), "
        f"demand for change {verdict.demand_for_change.level} "
        f"({verdict.demand_for_change.score:.2f})",
        *verdict.reasons,
    ]
    record = ChangeRecord(
        service=service,
        owner=svc.owner,
        commit=commit,
        previous_release=plan.previous.name if plan.previous else None,
        version=plan.version,
        commits=plan.commits,
        diff_stat=repo.diff_stat(plan.previous.sha if plan.previous else None, commit),
        steps=tuple(steps),
        digest=plan_digest(commit, steps),
        risk=tuple(risk),
        requested_by=requested_by,
        emergency=emergency,
        emergency_reason=reason,
    )
    create_markdown_artifact(
        record.markdown(),
        key=artifact_key(service, "change-record"),
        description=f"Change record of {service} {record.version}",
    )
    rt.audit.append(
        "change.record",
        service=service,
        run_id=_run_id(),
        at=now(),
        commit=commit,
        version=record.version,
        plan_digest=record.digest,
        commits=len(record.commits),
        steps=[s.name for s in steps],
        estimate_s=record.estimate.total_seconds(),
        emergency=emergency,
        emergency_reason=reason,
        requested_by=requested_by,
    )
    return record


@task(name="pre-flight")
def preflight(record: ChangeRecord, *, stage: Literal["readiness", "window"]) -> list[str]:
    rt = runtime()
    svc = rt.service(record.service)
    at = now()
    status = window_status(svc, OperatingModel.HERITAGE, rt.catalog.windows, at)
    targets = svc.heritage.ops_squad.notify if svc.heritage else []
    problems = preflight_problems(
        service=svc,
        record=record,
        window_open=status.open or stage == "readiness",
        frozen_by=status.frozen_by if stage == "window" else None,
        time_left=status.time_left(at) if stage == "window" else None,
        emergency=record.emergency,
        unreachable_targets=unreachable(targets) if stage == "readiness" else [],
    )
    if stage == "readiness" and svc.heritage is not None:
        longest = max(
            (
                rt.catalog.windows.windows[w].duration
                for w in svc.heritage.windows
                if w in rt.catalog.windows.windows
            ),
            default=timedelta(0),
        )
        if not record.emergency and longest < record.estimate:
            problems.append(
                f"the steps need {record.estimate} but the longest window of this service "
                f"lasts {longest}; no window can fit this change"
            )
    rt.audit.append(
        "preflight",
        service=record.service,
        run_id=_run_id(),
        at=at,
        stage=stage,
        ok=not problems,
        problems=problems,
        window=status.window,
        window_open=status.open,
        frozen_by=status.frozen_by,
        emergency=record.emergency,
    )
    return problems


@task(name="open-approval-gate")
def open_gate(record: ChangeRecord) -> datetime:
    """The deadline; persisted, so every replay of the run sees the same one."""
    rt = runtime()
    requested_at = now()
    svc = rt.service(record.service)
    policy = rt.heritage(svc).approvals
    deadline = requested_at + policy.deadline
    earlier = [e for e in rt.audit.entries(kinds=["approval.requested"]) if e.run_id == _run_id()]
    if earlier and earlier[-1].data.get("plan_digest") != record.digest:
        deadline = datetime.fromisoformat(str(earlier[0].data["deadline"]))  # the run's first
        rt.audit.append(
            "approval.lapsed",
            service=record.service,
            run_id=_run_id(),
            at=requested_at,
            old_plan_digest=earlier[-1].data.get("plan_digest"),
            plan_digest=record.digest,
            reason="the branch moved on: approvals of the earlier plan no longer count",
        )
    rt.audit.append(
        "approval.requested",
        service=record.service,
        run_id=_run_id(),
        at=requested_at,
        plan_digest=record.digest,
        required=policy.required + (1 if record.emergency else 0),
        eligible=sorted(rt.catalog.approvers_for(svc)),
        requester=record.requested_by,
        authors=[list(a) for a in record.authors],
        deadline=deadline.isoformat(),
        emergency=record.emergency,
    )
    return deadline


def _stream(prefix: str) -> Any:
    logger = get_run_logger()
    return lambda line: logger.info("%s | %s", prefix, line)


@task(name="apply-steps")
def apply_migration_steps(
    record: ChangeRecord, tree: Path, closes_at: datetime | None
) -> StepReport:
    rt = runtime()
    run_id = _run_id()
    env = {
        "DUALOP_SERVICE": record.service,
        "DUALOP_VERSION": record.version,
        "DUALOP_COMMIT": record.commit,
        "DUALOP_STATE_DIR": str(state_dir(rt.settings.data_dir.resolve(), record.service)),
    }

    def run(stage: str, step: Any, argv: list[str]) -> None:
        run_command(
            argv,
            what=f"{stage} of step {step.name}",
            cwd=tree,
            env=env,
            timeout=rt.settings.deploy.command_timeout_s,
            on_line=_stream(f"{step.name}:{stage}"),
        )

    def on_event(kind: str, step: str, detail: str | None) -> None:
        rt.audit.append(
            kind,
            service=record.service,
            run_id=run_id,
            at=now(),
            step=step,
            detail=detail,
            emergency=record.emergency,
        )

    return apply_steps(
        list(record.steps), run=run, clock=now, closes_at=closes_at, on_event=on_event
    )


@task(name="deploy-and-check")
def deploy_and_check(record: ChangeRecord, tree: Path) -> str | None:
    """Deploy with the service's deployer and health-check; returns an error, or None."""
    rt = runtime()
    svc = rt.service(record.service)
    deployer = rt.deployer(svc)
    previous = record.previous_release.rsplit("/v", 1)[-1] if record.previous_release else None
    release = Release(record.service, record.version, record.commit, tree, previous)
    try:
        deployer.deploy(release, on_line=_stream("deploy"))
        if svc.health is not None:
            env = rt.health_env(svc, record.version, record.commit)
            check_health(svc.health, cwd=tree, env=env, on_line=_stream("health"))
    except (DualopError, OSError) as e:
        deployer.rollback(release, on_line=_stream("rollback"))
        return f"{type(e).__name__}: {e}"
    return None


@task(name="tag-release")
def tag(record: ChangeRecord) -> str:
    rt = runtime()
    svc = rt.service(record.service)
    repo = rt.repo(svc)
    with locked(rt.settings.workspace_path, record.service):
        plan = plan_release(repo, svc, record.commit)
        if not plan.already_tagged:
            repo.create_tag(plan.tag, record.commit, f"{record.service} {plan.version} (migration)")
            repo.push_tag(plan.tag)
    return plan.tag


@task(name="hand-over")
def hand_over(record: ChangeRecord, tag_name: str) -> list[dict[str, Any]]:
    rt = runtime()
    svc = rt.service(record.service)
    squad = rt.heritage(svc).ops_squad
    kind = "EMERGENCY change" if record.emergency else "Change"
    body = (
        f"{kind} {record.service} {record.version} is live ({tag_name}, commit "
        f"{record.commit[:12]}). Owner: {record.owner}.\n\nSteps: "
        + ", ".join(s.name for s in record.steps)
        + "\n\nRollback plan:\n"
        + "\n".join(record.rollback_plan())
    )
    deliveries = notify(
        squad.notify,
        title=f"[dualop] {record.service} {record.version} handed over to {squad.name}",
        body=body,
    )
    for d in deliveries:
        rt.audit.append(
            "notification",
            service=record.service,
            run_id=_run_id(),
            at=now(),
            squad=squad.name,
            **asdict(d),
        )
    return [asdict(d) for d in deliveries]


@task(name="close-record", cache_policy=NO_CACHE, persist_result=False)
def close_record(record: ChangeRecord, outcome: str, detail: dict[str, Any]) -> dict[str, Any]:
    rt = runtime()
    result = {
        "service": record.service,
        "version": record.version,
        "commit": record.commit,
        "outcome": outcome,
        "emergency": record.emergency,
        **detail,
    }
    rt.audit.append(
        "release.outcome",
        service=record.service,
        run_id=_run_id(),
        at=now(),
        model="heritage",
        pipeline="migration",
        **{k: v for k, v in result.items() if k != "service"},
    )
    lines = [f"# {record.service} {record.version}: {outcome}", ""]
    if record.emergency:
        lines.append(f"**EMERGENCY change**: {record.emergency_reason}\n")
    lines += [f"- **{k}**: {v}" for k, v in detail.items()]
    create_markdown_artifact(
        "\n".join(lines),
        key=artifact_key(record.service, "migration-outcome"),
        description=f"{record.service}: {outcome}",
    )
    return result


# --- the gate ---------------------------------------------------------------------------


def _approval_gate(record: ChangeRecord, deadline: datetime) -> State[Any] | None:
    """Suspend until the policy is met; return a final state when the gate ends the run."""
    rt = runtime()
    svc = rt.service(record.service)
    run_id = _run_id()
    required = rt.heritage(svc).approvals.required + (1 if record.emergency else 0)
    eligible = rt.catalog.approvers_for(svc)
    recorded = {
        e.data.get("key")
        for e in rt.audit.entries(kinds=["approval.decision"])
        if e.run_id == run_id
    }
    decisions: list[Decision] = []
    for i in itertools.count():
        status, rulings = gate_status(
            decisions,
            required=required,
            eligible=eligible,
            requester=record.requested_by,
            authors=record.authors,
            plan_digest=record.digest,
            deadline=deadline,
        )
        if status.rejected_by is not None:
            by = status.rejected_by
            return Failed(
                message=f"rejected by {by.approver}: {by.comment or 'no comment'}; nothing applied"
            )
        if status.approved:
            return None
        summary = (
            f"{record.markdown()}\n\n---\n**Approvals so far**: "
            f"{', '.join(status.approvals) or 'none'} ({len(status.approvals)}/{required}). "
            f"Deadline {deadline.isoformat()}."
        )
        key = f"approval-{record.digest[:16]}-{i}"
        answer = suspend_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(
                description=summary, decision="approve", plan_digest=record.digest
            ),
            key=key,
            # Backstop only: `approval-deadlines` ends the run at the deadline itself.
            timeout=max(60, int((deadline - now()).total_seconds()) + 3600),
        )
        decision = Decision(
            answer.decision,
            answer.approver.strip(),
            answer.comment,
            answer.plan_digest,
            now(),
            answer.via,
        )
        decisions.append(decision)
        _, rulings = gate_status(
            decisions,
            required=required,
            eligible=eligible,
            requester=record.requested_by,
            authors=record.authors,
            plan_digest=record.digest,
            deadline=deadline,
        )
        if key not in recorded:
            ruling = rulings[-1]
            rt.audit.append(
                "approval.decision" if ruling.accepted else "approval.refused",
                service=record.service,
                run_id=run_id,
                at=decision.at,
                key=key,
                decision=decision.decision,
                approver=decision.approver,
                approver_identity="self-asserted"
                if decision.via == "ui"
                else "checked by dualop approve",
                via=decision.via,
                comment=decision.comment,
                plan_digest=decision.plan_digest,
                accepted=ruling.accepted,
                reason=ruling.reason,
                emergency=record.emergency,
            )
            if not ruling.accepted:
                get_run_logger().warning("decision refused: %s", ruling.reason)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_for_window(record: ChangeRecord) -> None:
    rt = runtime()
    svc = rt.service(record.service)
    for i in itertools.count():
        status = window_status(svc, OperatingModel.HERITAGE, rt.catalog.windows, now())
        if status.open:
            return
        key = f"window-{record.digest[:16]}-{i}"
        seen = {
            e.data.get("key")
            for e in rt.audit.entries(kinds=["migration.waiting"])
            if e.run_id == _run_id()
        }
        if key not in seen:
            rt.audit.append(
                "migration.waiting",
                service=record.service,
                run_id=_run_id(),
                at=now(),
                key=key,
                window=status.window,
                next_open_at=status.next_open_at.isoformat() if status.next_open_at else None,
                frozen_by=status.frozen_by,
            )
        suspend_flow_run(key=key, timeout=None)


# --- the flows --------------------------------------------------------------------------


@flow(name="migration", log_prints=True, persist_result=True)
def migration(
    service: ServiceParam,
    ref: GitRefParam = None,
    trigger: Trigger = "ui",
    requested_by: str | None = None,
    emergency: bool = False,
    reason: str | None = None,
) -> dict[str, Any] | State[Any]:
    """Release one heritage service in its window, behind approval, with rollback."""
    rt = runtime()
    svc = rt.service(service)
    if svc.heritage is None:
        raise InputError(f"{service} has no heritage: block; it cannot take the migration pipeline")
    if emergency and not (reason and reason.strip()):
        raise InputError("an emergency change needs a reason; pass reason=...")
    structlog.contextvars.bind_contextvars(service=service, flow_run_id=_run_id())
    while True:
        commit = resolve_head(service, ref)
        record = change_record(service, commit, requested_by, emergency, reason)
        problems = preflight(record, stage="readiness")
        if problems:
            close_record(record, "preflight-failed", {"problems": problems})
            return Failed(message="pre-flight failed, nothing applied: " + "; ".join(problems))
        deadline = open_gate(record)
        ended = _approval_gate(record, deadline)
        if ended is not None:
            close_record(record, "rejected", {"reason": ended.message})
            return ended
        if not emergency:
            _wait_for_window(record)
        if resolve_head(service, ref) == commit:
            break
        # The branch moved while waiting for the window: the next turn of the loop makes
        # a new record and plan digest, and `open_gate` records the lapse.
    problems = preflight(record, stage="window")
    if problems:
        close_record(record, "preflight-failed", {"problems": problems})
        return Failed(message="pre-flight failed, nothing applied: " + "; ".join(problems))
    status = window_status(svc, OperatingModel.HERITAGE, rt.catalog.windows, now())
    closes_at = None if emergency else status.closes_at
    tree = release_tree(
        rt.repo(svc), service, commit, workspace=rt.settings.workspace_path, run_id=_run_id()
    )
    try:
        report = apply_migration_steps(record, tree, closes_at)
        if report.ok:
            error = deploy_and_check(record, tree)
            if error:
                report = _roll_back_all(record, tree, report, error)
        if not report.ok:
            close_record(record, "rolled-back", asdict(report))
            return Failed(
                message=f"{report.reason}; applied {report.applied or 'nothing'}, "
                f"rolled back {report.rolled_back or 'nothing'}"
            )
        tag_name = tag(record)
        deliveries = hand_over(record, tag_name)
        failed = [d for d in deliveries if not d["ok"]]
        return close_record(
            record,
            "released",
            {
                "tag": tag_name,
                "applied": report.applied,
                "handed_over_to": [d["target"] for d in deliveries if d["ok"]],
                "notification_failures": failed,
                "lead_time_s": record.lead_time(now()),
                "hotfix": any(is_fix_signal(c) for c in record.commits),
            },
        )
    finally:
        remove_tree(tree)


def _roll_back_all(record: ChangeRecord, tree: Path, report: StepReport, error: str) -> StepReport:
    """The deploy failed after every step applied: undo the steps too, in reverse."""
    rt = runtime()
    undo = StepReport(
        applied=list(report.applied), failed_step="deploy", reason=f"deploy failed: {error}"
    )
    for step in reversed([s for s in record.steps if s.name in report.applied]):
        try:
            run_command(
                step.rollback,
                what=f"rollback of step {step.name}",
                cwd=tree,
                timeout=rt.settings.deploy.command_timeout_s,
                on_line=_stream(f"{step.name}:rollback"),
                env={
                    "DUALOP_STATE_DIR": str(
                        state_dir(rt.settings.data_dir.resolve(), record.service)
                    )
                },
            )
            undo.rolled_back.append(step.name)
        except CommandFailed:
            undo.rollback_failed.append(step.name)
    return undo


# --- window openings and deadlines ------------------------------------------------------


@task(name="open-window", cache_policy=NO_CACHE, persist_result=False)
def open_window(window: str, at: datetime) -> list[dict[str, Any]]:
    """For each heritage service of `window`: resume its waiting run, or start a migration
    when it has unreleased changes; a freeze or a digital verdict starts nothing."""
    from flows.prefect_api import active_runs, resume, start_deployment

    rt = runtime()
    actions = []
    for svc in rt.catalog.heritage_services_in(window):
        repo = rt.repo(svc)
        verdict = classify_service(svc, repo, at=at, settings=rt.settings.classifier)
        status = window_status(svc, OperatingModel.HERITAGE, rt.catalog.windows, at)
        action: dict[str, Any] = {"service": svc.name, "model": verdict.model.value}
        if verdict.model is not OperatingModel.HERITAGE:
            action["action"] = "skipped: classified digital (the paved road releases it)"
        elif status.frozen_by:
            action["action"] = f"skipped: freeze {status.frozen_by!r} is in force"
        else:
            waiting = active_runs("migration", svc.name)
            suspended = [r for r in waiting if r.state_name == "Suspended"]
            if waiting:
                for r in suspended:
                    if r.waiting_for == "window":
                        resume(r.id)
                action["action"] = "resumed waiting run(s)" if suspended else "already running"
                action["runs"] = [r.id for r in waiting]
            else:
                last = repo.last_release(svc.name, svc.tag_pattern, reachable_from=svc.branch)
                pending = repo.commits_between(last.sha if last else None, repo.resolve(svc.branch))
                if not pending:
                    action["action"] = "skipped: no unreleased changes"
                else:
                    run_id = start_deployment(
                        "migration/migration",
                        {"service": svc.name, "trigger": "schedule", "requested_by": None},
                        idempotency_key=f"window:{window}:{at:%Y%m%dT%H%M}:{svc.name}",
                    )
                    action["action"] = f"started a migration for {len(pending)} change(s)"
                    action["runs"] = [run_id]
        rt.audit.append(
            "window.opened",
            service=svc.name,
            run_id=_run_id(),
            at=at,
            window=window,
            **{k: v for k, v in action.items() if k != "service"},
        )
        actions.append(action)
    return actions


@flow(name="migration-window", log_prints=True)
def migration_window(window: WindowParam) -> list[dict[str, Any]]:
    """Scheduled at each opening of `window`: start or resume its heritage migrations."""
    rt = runtime()
    if window not in rt.catalog.windows.windows:
        raise InputError(f"no window named {window!r} in windows.yaml")
    actions = open_window(window, now())
    rows = "\n".join(f"| {a['service']} | {a['model']} | {a['action']} |" for a in actions)
    create_markdown_artifact(
        f"# Window {window} opened\n\n| service | model | action |\n|---|---|---|\n{rows}",
        key=artifact_key("window", window),
        description=f"Window {window} opened",
    )
    return actions


def expire_overdue(at: datetime) -> list[str]:
    """End every run still awaiting approval after its deadline: rejected by timeout."""
    from flows.prefect_api import active_runs, fail_run

    rt = runtime()
    expired = []
    for run in active_runs("migration", None):
        if run.state_name != "Suspended" or run.waiting_for != "approval":
            continue
        requested = rt.audit.entries(kinds=["approval.requested"])
        mine = [e for e in requested if e.run_id == run.id]
        if not mine:
            continue
        deadline = datetime.fromisoformat(mine[-1].data["deadline"])
        if at < deadline:
            continue
        message = (
            f"rejected by timeout: the approval deadline {deadline.isoformat()} passed; "
            "nothing applied"
        )
        rt.audit.append(
            "approval.timeout",
            service=mine[-1].service,
            run_id=run.id,
            at=at,
            deadline=deadline.isoformat(),
            plan_digest=mine[-1].data["plan_digest"],
        )
        rt.audit.append(
            "release.outcome",
            service=mine[-1].service,
            run_id=run.id,
            at=at,
            model="heritage",
            pipeline="migration",
            outcome="rejected-by-timeout",
            reason=message,
        )
        fail_run(run.id, message)
        expired.append(run.id)
    return expired


@flow(name="approval-deadlines")
def approval_deadlines() -> list[str]:
    """Every minute: runs past their approval deadline end rejected by timeout."""
    return expire_overdue(now())
