"""`route`, the classifier step: which pipeline does this release take, and why.

A digital service goes down the paved road now, as a child flow run of this one (the
UI links them). A heritage service's change is recorded as pending for its next
release window; the answer says when that opens. Either way the return value and a
markdown artifact carry the classifier's reasons.
"""

from __future__ import annotations

from typing import Any, Literal, assert_never

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from dualop.catalog import OperatingModel
from dualop.classify import Classification, classify_service
from dualop.windows import window_status
from flows.common import GitRefParam, ServiceParam, Trigger, artifact_key, now, runtime
from flows.paved_road import paved_road

__all__ = ["RouteResult", "route"]


class RouteResult(BaseModel):
    """What `route` decided; also the JSON `dualop release --json` prints."""

    service: str
    commit: str
    model: OperatingModel
    action: Literal["paved-road", "queue-for-window"]
    reasons: list[str]
    migration_candidate: bool = False
    release_run_id: str | None = Field(default=None, description="the paved-road child run")
    release_state: str | None = None
    next_window: str | None = None
    next_open_at: str | None = None


@task(name="classify")
def classify(service: str, commit: str) -> Classification:
    rt = runtime()
    svc = rt.service(service)
    verdict = classify_service(svc, rt.repo(svc), at=now(), settings=rt.settings.classifier)
    facts = {k: v for k, v in verdict.to_json_dict().items() if k not in {"service", "at"}}
    rt.audit.append(
        "classification", service=service, run_id=_run_id(), at=now(), commit=commit, **facts
    )
    return verdict


@task(name="resolve-ref")
def resolve(service: str, ref: str | None) -> str:
    rt = runtime()
    svc = rt.service(service)
    return str(rt.repo(svc).resolve(ref or svc.branch))


@task(name="queue-for-window")
def queue_for_window(
    service: str, commit: str, trigger: str, requested_by: str | None
) -> tuple[str | None, str | None]:
    rt = runtime()
    svc = rt.service(service)
    status = window_status(svc, OperatingModel.HERITAGE, rt.catalog.windows, now())
    next_at = status.next_open_at.isoformat() if status.next_open_at else None
    if status.open and status.opened_at is not None:
        next_at = status.opened_at.isoformat()
    rt.audit.append(
        "change.pending",
        service=service,
        run_id=_run_id(),
        at=now(),
        commit=commit,
        trigger=trigger,
        requested_by=requested_by,
        window=status.window,
        window_open_now=status.open,
        next_open_at=next_at,
        frozen_by=status.frozen_by,
    )
    return status.window, next_at


def _run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else "local"


def _markdown(result: RouteResult) -> str:
    where = {
        "paved-road": "down the **paved road** now (child run below)",
        "queue-for-window": (
            f"**queued** for heritage window `{result.next_window}`, which opens at "
            f"{result.next_open_at or 'no future slot found'}"
        ),
    }[result.action]
    lines = [
        f"# {result.service}: {result.model.value}",
        "",
        f"Commit `{result.commit[:12]}` goes {where}.",
        "",
        "## Why",
        *[f"- {reason}" for reason in result.reasons],
    ]
    if result.migration_candidate:
        lines += ["", "**Migration candidate**: heritage under high demand for change."]
    return "\n".join(lines)


@flow(name="route", log_prints=True)
def route(
    service: ServiceParam,
    ref: GitRefParam = None,
    trigger: Trigger = "ui",
    requested_by: str | None = None,
) -> RouteResult | State[Any]:
    """Classify the service, then release it on the paved road or queue it for a window."""
    rt = runtime()
    rt.service(service)
    run_id = _run_id()
    rt.audit.append(
        "release.triggered",
        service=service,
        run_id=run_id,
        at=now(),
        ref=ref,
        trigger=trigger,
        requested_by=requested_by,
    )
    commit = resolve(service, ref)
    verdict = classify(service, commit)
    result = RouteResult(
        service=service,
        commit=commit,
        model=verdict.model,
        action="paved-road",
        reasons=verdict.reasons,
        migration_candidate=verdict.migration_candidate,
    )
    match verdict.model:
        case OperatingModel.DIGITAL:
            state = paved_road(
                service, ref=commit, trigger=trigger, requested_by=requested_by, return_state=True
            )
            result.release_run_id = str(state.state_details.flow_run_id)
            result.release_state = state.name
        case OperatingModel.HERITAGE:
            result.action = "queue-for-window"
            result.next_window, result.next_open_at = queue_for_window(
                service, commit, trigger, requested_by
            )
        case _:
            assert_never(verdict.model)
    create_markdown_artifact(
        _markdown(result),
        key=artifact_key(service, "route"),
        description=f"Routing of {service} {commit[:12]}",
    )
    if result.action == "paved-road" and not state.is_completed():
        # The release's Failed/Cancelled with its reason, as a fresh state: Prefect would
        # fold the child's own state into a bare "1/1 states failed."
        return State(type=state.type, name=state.name, message=state.message)
    return result
