"""The paved road: how a digital service's commit becomes the live release, in minutes.

fetch → (one release per service: the `release-<service>` concurrency limit) →
superseded? → checkout → build → test → tag → deploy → health check → record.
Any failure once the deploy began rolls back to the previous release and fails the
run with the reason. Each step is a named task, so the Prefect UI shows where a
release stands and where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.states import Cancelled

from dualop.commands import run_command
from dualop.deploy import Release
from dualop.exceptions import CommandFailed, DualopError, HealthCheckFailed, ReleaseError
from dualop.health import check_health
from dualop.paved_road import ReleasePlan, plan_release, release_commands, superseding_commit
from dualop.workspace import locked, release_tree, remove_tree
from flows.common import GitRefParam, ServiceParam, Trigger, artifact_key, now, runtime
from flows.prefect_api import active_release_commits

__all__ = ["lock_name", "paved_road"]

log = structlog.get_logger(__name__)


def lock_name(service: str) -> str:
    """The global concurrency limit that allows one release of `service` at a time."""
    return f"release-{service}"


def _run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else "local"


def _stream(prefix: str) -> Any:
    logger = get_run_logger()
    return lambda line: logger.info("%s | %s", prefix, line)


@dataclass(frozen=True)
class Outcome:
    service: str
    commit: str
    outcome: str  # released | rolled-back | failed | superseded | already-live
    version: str | None = None
    previous_version: str | None = None
    lead_time_s: float | None = None
    reason: str | None = None
    superseded_by: str | None = None
    hotfix: bool = False


@task(name="fetch-and-resolve")
def fetch_and_resolve(service: str, ref: str | None) -> str:
    rt = runtime()
    svc = rt.service(service)
    return str(rt.repo(svc).resolve(ref or svc.branch))


@task(name="check-superseded", cache_policy=NO_CACHE, persist_result=False)
def check_superseded(service: str, commit: str, run_id: str) -> str | None:
    rt = runtime()
    svc = rt.service(service)
    repo = rt.repo(svc)
    waiting = [repo.resolve(ref or svc.branch) for ref in active_release_commits(service, run_id)]
    live_version = rt.deployer(svc).current_version(service)
    live_commit = repo.commit_of_version(service, live_version) if live_version else None
    return superseding_commit(repo, commit, live_commit=live_commit, waiting=waiting)


@task(name="checkout")
def checkout(service: str, commit: str, run_id: str) -> Path:
    rt = runtime()
    repo = rt.repo(rt.service(service))
    return release_tree(repo, service, commit, workspace=rt.settings.workspace_path, run_id=run_id)


def _run_stage(stage: str, argv: list[str] | None, tree: Path) -> str:
    rt = runtime()
    if argv is None:
        get_run_logger().warning("no %s command for this tree: skipped", stage)
        return f"no {stage} command (skipped)"
    run_command(
        argv,
        what=stage,
        cwd=tree,
        timeout=rt.settings.deploy.command_timeout_s,
        on_line=_stream(stage),
    )
    return " ".join(argv)


@task(name="build")
def build(service: str, tree: Path) -> str:
    argv, _ = release_commands(runtime().service(service), tree)
    return _run_stage("build", argv, tree)


@task(name="test")
def test(service: str, tree: Path) -> str:
    _, argv = release_commands(runtime().service(service), tree)
    return _run_stage("test", argv, tree)


@task(name="tag-release")
def tag_release(service: str, commit: str) -> ReleasePlan:
    rt = runtime()
    svc = rt.service(service)
    repo = rt.repo(svc)
    with locked(rt.settings.workspace_path, service):
        plan = plan_release(repo, svc, commit)
        if not plan.already_tagged:
            repo.create_tag(plan.tag, commit, f"{service} {plan.version}\n\n{plan.bump_reason}")
            repo.push_tag(plan.tag)
    create_markdown_artifact(
        plan.notes_markdown(),
        key=artifact_key(service, "release-notes"),
        description=f"Release notes of {service} {plan.version}",
    )
    if plan.commits:
        create_table_artifact(
            plan.notes_table(),
            key=artifact_key(service, "changes"),
            description=f"Changes in {service} {plan.version}",
        )
    return plan


@task(name="deploy")
def deploy(service: str, plan: ReleasePlan, tree: Path) -> None:
    rt = runtime()
    release = Release(service, plan.version, plan.commit, tree, plan.previous_version)
    rt.deployer(rt.service(service)).deploy(release, on_line=_stream("deploy"))


@task(name="health-check")
def health_check(service: str, plan: ReleasePlan, tree: Path) -> str:
    rt = runtime()
    svc = rt.service(service)
    if svc.health is None:
        get_run_logger().warning("no health check configured for %s: skipped", service)
        return "no health check configured"
    env = rt.health_env(svc, plan.version, plan.commit)
    return str(check_health(svc.health, cwd=tree, env=env, on_line=_stream("health")))


@task(name="rollback")
def rollback(service: str, plan: ReleasePlan, tree: Path) -> str | None:
    rt = runtime()
    release = Release(service, plan.version, plan.commit, tree, plan.previous_version)
    return rt.deployer(rt.service(service)).rollback(release, on_line=_stream("rollback"))


@task(name="record-outcome", cache_policy=NO_CACHE, persist_result=False)
def record(outcome: Outcome, run_id: str, trigger: str, requested_by: str | None) -> Outcome:
    rt = runtime()
    rt.audit.append(
        "release.outcome",
        service=outcome.service,
        run_id=run_id,
        at=now(),
        model="digital",
        pipeline="paved-road",
        trigger=trigger,
        requested_by=requested_by,
        **{k: v for k, v in asdict(outcome).items() if k != "service"},
    )
    rows = [{"field": k, "value": "" if v is None else str(v)} for k, v in asdict(outcome).items()]
    create_table_artifact(
        rows,
        key=artifact_key(outcome.service, "outcome"),
        description=f"{outcome.service}: {outcome.outcome}",
    )
    log.info("dualop.release.finished", **asdict(outcome))
    return outcome


@flow(name="paved-road", log_prints=True)
def paved_road(
    service: ServiceParam,
    ref: GitRefParam = None,
    trigger: Trigger = "ui",
    requested_by: str | None = None,
) -> Outcome | State[Any]:
    """Release one commit of a digital service: build, test, tag, deploy, check, roll back."""
    rt = runtime()
    rt.service(service)  # unknown service: fail before anything else runs
    run_id = _run_id()
    structlog.contextvars.bind_contextvars(service=service, flow_run_id=run_id)
    commit = fetch_and_resolve(service, ref)
    rt.audit.append(
        "release.started",
        service=service,
        run_id=run_id,
        at=now(),
        pipeline="paved-road",
        commit=commit,
        trigger=trigger,
        requested_by=requested_by,
    )
    from flows.deployments import ensure_release_limits

    ensure_release_limits([service])  # a service added since `serve` started gets its limit
    with concurrency(lock_name(service), occupy=1, strict=True, lease_duration=60):
        return _release_locked(service, commit, run_id, trigger, requested_by)


def _superseded(
    service: str, commit: str, newer: str, run_id: str, trigger: str, requested_by: str | None
) -> State[Any]:
    message = f"superseded by newer commit {newer[:12]} of {service}; {commit[:12]} not deployed"
    record(
        Outcome(service, commit, "superseded", superseded_by=newer, reason=message),
        run_id,
        trigger,
        requested_by,
    )
    return Cancelled(message=message)


def _release_locked(
    service: str, commit: str, run_id: str, trigger: str, requested_by: str | None
) -> Outcome | State[Any]:
    newer = check_superseded(service, commit, run_id)
    if newer:
        return _superseded(service, commit, newer, run_id, trigger, requested_by)
    tree = checkout(service, commit, run_id)
    try:
        build(service, tree)
        test(service, tree)
        newer = check_superseded(service, commit, run_id)  # a newer push may have come in
        if newer:
            return _superseded(service, commit, newer, run_id, trigger, requested_by)
        plan = tag_release(service, commit)
        try:
            deploy(service, plan, tree)
            health_check(service, plan, tree)
        except (DualopError, OSError) as e:
            back_to = rollback(service, plan, tree)
            reason = f"{type(e).__name__}: {e}"
            record(
                Outcome(service, commit, "rolled-back", plan.version, back_to, reason=reason),
                run_id,
                trigger,
                requested_by,
            )
            raise ReleaseError(
                f"{service} {plan.version} failed after deploy began and was rolled back to "
                f"{back_to or 'nothing (first release)'}: {e}"
            ) from e
        lead = plan.lead_time(now())
        return record(
            Outcome(
                service,
                commit,
                "released",
                plan.version,
                plan.previous_version,
                lead.total_seconds() if lead else None,
                hotfix=plan.hotfix,
            ),
            run_id,
            trigger,
            requested_by,
        )
    except (CommandFailed, HealthCheckFailed) as e:
        record(Outcome(service, commit, "failed", reason=str(e)), run_id, trigger, requested_by)
        raise
    finally:
        remove_tree(tree)
