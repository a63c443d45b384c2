"""The few questions dualop asks Prefect's API directly, beyond running flows.

Used by the flows (supersede checks, window openings, deadlines) and the CLI
(`dualop approvals`, `approve`, `reject`, `release`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Failed

__all__ = [
    "ACTIVE_STATES",
    "RunInfo",
    "active_release_commits",
    "active_runs",
    "fail_run",
    "read_run",
    "resume",
    "start_deployment",
]

ACTIVE_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]

Waiting = Literal["approval", "window", "other"] | None


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    state_type: str
    state_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    waiting_for: Waiting = None
    pause_key: str | None = None


def _info(run: FlowRun) -> RunInfo:
    state = run.state
    pause_key = state.state_details.pause_key if state else None
    waiting: Waiting = None
    if state is not None and state.is_paused():
        waiting = (
            "approval"
            if pause_key and pause_key.startswith("approval-")
            else "window"
            if pause_key and pause_key.startswith("window-")
            else "other"
        )
    return RunInfo(
        id=str(run.id),
        name=run.name,
        state_type=state.type.value if state else "UNKNOWN",
        state_name=state.name if state and state.name else "",
        parameters=dict(run.parameters),
        waiting_for=waiting,
        pause_key=pause_key,
    )


def active_runs(flow: str, service: str | None) -> list[RunInfo]:
    """Runs of `flow` (for `service`, or all) not yet finished, oldest first."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE_STATES))
            ),
            limit=200,
        )
    infos = [_info(r) for r in runs]
    return [i for i in infos if service is None or i.parameters.get("service") == service]


def active_release_commits(service: str, exclude_run_id: str) -> list[str | None]:
    """The `ref` parameters of the other paved-road releases of `service` still active."""
    return [
        run.parameters.get("ref")
        for run in active_runs("paved-road", service)
        if run.id != exclude_run_id
    ]


def read_run(run_id: str) -> RunInfo:
    with get_client(sync_client=True) as client:
        return _info(client.read_flow_run(UUID(run_id)))


def resume(run_id: str, run_input: dict[str, Any] | None = None) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(UUID(run_id), run_input=run_input)


def fail_run(run_id: str, message: str) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Failed(message=message), force=True)


def start_deployment(
    name: str, parameters: dict[str, Any], *, idempotency_key: str | None = None
) -> str:
    """Create a run of deployment `name` ("flow/deployment") and return its id at once.

    The run is top-level even when started from inside a flow (`as_subflow=False`): a
    migration started by a window opening must be able to suspend, and Prefect cannot
    suspend a subflow.
    """
    from prefect.deployments import run_deployment

    run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here, never a coroutine
        name,
        parameters=parameters,
        timeout=0,
        idempotency_key=idempotency_key,
        as_subflow=False,
    )
    return str(run.id)


def wait_for_final(run_id: str, *, timeout: float, poll: float = 1.0) -> str:
    """Poll until the run is final (or suspended); return its state name."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        info = read_run(run_id)
        if info.state_type in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"} or (
            info.waiting_for is not None
        ):
            return info.state_name
        if time.monotonic() > deadline:
            return info.state_name
        time.sleep(poll)
