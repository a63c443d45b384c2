"""The deployments dualop serves, and the per-service concurrency limits they rely on.

Used by `dualop serve` (the embedded default: one process serving every deployment)
and `dualop deploy --pool NAME` (the scale-out mode: the same deployments on a work
pool, run by Prefect workers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import structlog
from prefect import get_client
from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType

from dualop.catalog import Catalog
from dualop.exceptions import ConfigError, DualopError

__all__ = [
    "CRASH_AUTOMATION",
    "HEARTBEAT_SECONDS",
    "POOL_TYPE",
    "ROUTE_DEPLOYMENT",
    "PoolDeployment",
    "build_deployments",
    "deploy_to_pool",
    "ensure_crash_detection",
    "ensure_release_limits",
    "ensure_work_pool",
    "window_schedules",
]

log = structlog.get_logger(__name__)

ROUTE_DEPLOYMENT = "route/route"


def window_schedules(catalog: Catalog) -> list[Any]:
    """One Prefect cron schedule per release window, in the window's own timezone.

    `Cron(..., timezone=...)` and not a bare `cron=`: the latter is read as UTC.
    """
    return [
        Cron(
            window.cron,
            timezone=window.timezone,
            parameters={"window": name},
            slug=f"window-{name}",
        )
        for name, window in sorted(catalog.windows.windows.items())
    ]


def ensure_release_limits(services: Iterable[str]) -> None:
    """Create the `release-<service>` global concurrency limits (limit 1) that are missing.

    The paved road takes them with `strict=True`: a missing limit fails the release
    instead of silently running unlocked.
    """
    from flows.paved_road import lock_name

    with get_client(sync_client=True) as client:
        for service in services:
            client.upsert_global_concurrency_limit_by_name(lock_name(service), 1)


HEARTBEAT_SECONDS = 30
"""How often a flow run tells the server it is alive (Prefect's minimum): the stack and
workers set `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` to it."""

CRASH_AUTOMATION = "dualop-crash-silent-runs"


def ensure_crash_detection(silent_for: timedelta) -> None:
    """The automation that marks a flow run Crashed when its process died.

    A SIGKILLed worker, runner or machine leaves its runs Running for ever: nothing else
    knows they are gone. This is Prefect's documented "detect zombie flows" automation:
    a run that sent a heartbeat and then, for `silent_for`, neither another heartbeat nor
    a final state, is marked Crashed. A suspension counts as an answer, since a migration
    waiting for approval holds no process and sends none. Recreated when `silent_for`
    changed; left alone otherwise.
    """
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(CRASH_AUTOMATION)
        if any(getattr(a.trigger, "within", None) == silent_for for a in existing):
            return
        for stale in existing:
            client.delete_automation(stale.id)
    answers = {"heartbeat", "Completed", "Failed", "Cancelled", "Crashed", "Suspended", "Paused"}
    Automation(
        name=CRASH_AUTOMATION,
        description="dualop: a flow run whose heartbeats stopped is marked Crashed",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={f"prefect.flow-run.{a}" for a in answers},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silent_for,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"Flow run marked as crashed: no heartbeat for {silent_for} "
                "(its process died).",
            )
        ],
    ).create()
    log.info("dualop.deploy.crash_detection", silent_for_s=silent_for.total_seconds())


def build_deployments(catalog: Catalog) -> list[Any]:
    """The RunnerDeployments for `serve()` (and, with a pool, for `dualop deploy`)."""
    from flows.migration import approval_deadlines, migration, migration_window
    from flows.paved_road import paved_road
    from flows.route import route

    # Module entrypoints ("flows.route.route"), not file paths: the runs import the
    # installed package, so results (RouteResult...) unpickle anywhere as flows.* types.
    module = EntrypointType.MODULE_PATH
    return [
        route.to_deployment(
            "route",
            entrypoint_type=module,
            description="The classifier step: paved road now, or queue for a release window.",
            tags=["dualop"],
        ),
        paved_road.to_deployment(
            "paved-road",
            entrypoint_type=module,
            description="Release a digital service: build, test, tag, deploy, check, roll back.",
            tags=["dualop", "digital"],
        ),
        migration.to_deployment(
            "migration",
            entrypoint_type=module,
            description="Release a heritage service in its window, behind approval, with "
            "rollback and an ops hand-over.",
            tags=["dualop", "heritage"],
        ),
        migration_window.to_deployment(
            "migration-window",
            entrypoint_type=module,
            description="At each window's opening: start or resume its heritage migrations.",
            schedules=window_schedules(catalog),
            tags=["dualop", "heritage"],
        ),
        approval_deadlines.to_deployment(
            "approval-deadlines",
            entrypoint_type=module,
            description="End migrations whose approval deadline passed (rejected by timeout).",
            schedules=[Interval(60, slug="every-minute")],
            tags=["dualop", "heritage"],
        ),
    ]


# --- scale-out: the same deployments on a work pool -------------------------------------

POOL_TYPE = "process"
"""Workers run each flow run as a subprocess of a machine with dualop installed."""


def ensure_work_pool(name: str, *, create: bool) -> bool:
    """Check that work pool `name` exists and is a `process` pool; create it when `create`.

    Returns True when it was created. A pool of another type is refused (`ConfigError`):
    dualop's deployments use module entrypoints that the worker's own Python imports.
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            if not create:
                raise ConfigError(
                    f"there is no work pool {name!r}; register the deployments on it first "
                    f"with `dualop deploy --pool {name}`"
                ) from None
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type=POOL_TYPE,
                        description="dualop: route, paved-road, migration, migration-window, "
                        "approval-deadlines",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            except ObjectAlreadyExists:  # created meanwhile (a worker, another deploy)
                pool = client.read_work_pool(name)
            else:
                log.info("dualop.deploy.pool_created", pool=name, type=POOL_TYPE)
                return True
    if pool.type != POOL_TYPE:
        raise ConfigError(
            f"work pool {name!r} is a {pool.type!r} pool; dualop runs on a {POOL_TYPE!r} "
            "pool (workers on machines with dualop installed). Pick another name, or delete "
            f"it with `prefect work-pool delete {name}`"
        )
    return False


@dataclass(frozen=True)
class PoolDeployment:
    """One deployment as registered on a work pool (what `dualop deploy` prints)."""

    name: str
    id: str
    entrypoint: str
    schedules: list[str] = field(default_factory=list)


def _describe(schedule: Any) -> str:
    inner = schedule.schedule
    slug = schedule.slug or "-"
    if getattr(inner, "cron", None):
        return f"{slug}: cron {inner.cron!r} {inner.timezone or 'UTC'}"
    if getattr(inner, "interval", None):
        return f"{slug}: every {inner.interval.total_seconds():.0f}s"
    return f"{slug}: {inner}"


def deploy_to_pool(
    catalog: Catalog, pool: str, *, crash_after: timedelta
) -> tuple[bool, list[PoolDeployment]]:
    """Register `build_deployments(catalog)` on work pool `pool` (created when missing).

    The same definitions `dualop serve` serves: schedules in each window's timezone,
    parameters, module entrypoints, the `release-<service>` concurrency limits and the
    crash detection automation (`ensure_crash_detection`). No
    path or code is stored with them: a worker imports `flows.*` from its own installed
    dualop, so nothing has to be built or pushed (Prefect's `deploy()` asks for an image
    or a source only for file entrypoints).
    """
    from prefect.exceptions import PrefectHTTPStatusError

    created = ensure_work_pool(pool, create=True)
    ensure_release_limits(catalog.services)
    ensure_crash_detection(crash_after)
    registered = []
    for deployment in build_deployments(catalog):
        name = f"{deployment.flow_name}/{deployment.name}"
        try:
            deployment_id = deployment.apply(work_pool_name=pool)
        except (PrefectHTTPStatusError, httpx.HTTPError, ValueError, RuntimeError) as e:
            raise DualopError(f"could not register {name} on work pool {pool!r}: {e}") from None
        registered.append(
            PoolDeployment(
                name,
                str(deployment_id),
                str(deployment.entrypoint),
                [_describe(s) for s in deployment.schedules or []],
            )
        )
        log.info("dualop.deploy.registered", deployment=name, pool=pool, id=str(deployment_id))
    return created, registered
