"""The deployments dualop serves, and the per-service concurrency limits they rely on.

Used by `dualop serve` (the embedded default: one process serving every deployment)
and `dualop deploy --pool NAME` (the scale-out mode: the same deployments on a work
pool, run by Prefect workers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from prefect import get_client
from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType

from dualop.catalog import Catalog

__all__ = [
    "ROUTE_DEPLOYMENT",
    "build_deployments",
    "ensure_release_limits",
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
