"""Serve deployments with Prefect's runner, and start new runs the moment they exist.

Prefect's runner finds new flow runs by polling the API (`runner_poll_seconds`, 1 s by
default): a webhook's release waits half a poll on average before it starts. Polling
faster costs a write on the server per deployment per poll, which SQLite pays for in
`database is locked` retries (README, "Benchmarks").

So `serve` adds a wake-up: it subscribes to the server's event stream for the served
deployments' flow runs, and when one enters a Scheduled state (a new run, a retry, an
approved migration resuming), it runs the runner's own poll-and-submit at once. The poll
loop stays as it was, so a wake-up lost to a dropped connection only costs the usual
wait. Two rules keep it safe:

- It submits through the runner's own poll (`Runner._get_and_submit_flow_runs`), so the
  runner's capacity limit, its guard against submitting a run twice and the server's
  `Scheduled → Pending` orchestration all still apply; a run woken for and polled for at
  the same time starts once.
- Many events collapse into one poll: the wake-up is a flag, not a queue, so a burst of
  300 webhooks costs a handful of extra polls, not 300.

The Prefect method it calls is private. `tests/test_runner.py` fails on an upgrade that
removes it; until then `serve` logs `runner.wake_unavailable` and polls as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import structlog

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events.filters import EventFilter
    from prefect.runner import Runner

__all__ = ["runner_poll", "scheduled_runs_filter", "serve", "wake_on_scheduled_runs"]

log = structlog.get_logger(__name__)

# After a failure of the event stream, wait this long before subscribing again (doubling,
# up to the cap). Polling carries on meanwhile.
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 30.0


def serve(
    deployments: Iterable[RunnerDeployment],
    *,
    limit: int | None,
    poll_seconds: float,
    wake: bool = True,
) -> None:
    """What `prefect.serve` does, plus the wake-up (module docstring) unless `wake=False`.

    Blocks until SIGTERM (the runner's own handler) or Ctrl-C.
    """
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    deployments = list(deployments)
    runner = Runner(limit=limit, query_seconds=poll_seconds, pause_on_shutdown=True)
    # In a sync context `add_deployment` registers the deployment and returns its id.
    deployment_ids = [cast(UUID, runner.add_deployment(d)) for d in deployments]
    log.info(
        "runner.serving",
        deployments=[f"{d.flow_name}/{d.name}" for d in deployments],
        limit=limit,
        poll_s=poll_seconds,
        wake=wake,
    )
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):
        asyncio.run(_run(runner, deployment_ids if wake else []))


async def _run(runner: Runner, deployment_ids: list[UUID]) -> None:
    poll = runner_poll(runner) if deployment_ids else None
    if poll is None:
        if deployment_ids:
            log.warning(
                "runner.wake_unavailable",
                reason="this Prefect's Runner has no _get_and_submit_flow_runs; new runs "
                "start on the next poll",
            )
        await runner.start()
        return
    waker = asyncio.create_task(
        wake_on_scheduled_runs(poll, scheduled_runs_filter(deployment_ids)),
        name="dualop-runner-wake",
    )
    try:
        await runner.start()
    finally:
        waker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waker


def runner_poll(runner: Runner) -> Callable[[], Awaitable[None]] | None:
    """The runner's poll-and-submit, guarded to run only while the runner is up; None if
    this version of Prefect does not have it."""
    method = getattr(runner, "_get_and_submit_flow_runs", None)
    if method is None:
        return None

    async def poll() -> None:
        if runner.started and not runner.stopping:
            await method()

    return poll


def scheduled_runs_filter(deployment_ids: Iterable[UUID]) -> EventFilter:
    """The served deployments' flow runs entering a Scheduled state, filtered by the server
    (`wake_on_scheduled_runs` checks the state again on arrival)."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventRelatedFilter,
        EventResourceFilter,
    )
    from prefect.events.schemas.events import ResourceSpecification

    return EventFilter(
        event=EventNameFilter(prefix=["prefect.flow-run."]),
        resource=EventResourceFilter(
            labels=ResourceSpecification({"prefect.state-type": "SCHEDULED"})
        ),
        related=EventRelatedFilter(id=[f"prefect.deployment.{d}" for d in deployment_ids]),
    )


def _is_scheduled(event: Any) -> bool:
    return bool(event.resource.get("prefect.state-type") == "SCHEDULED")


async def wake_on_scheduled_runs(
    poll: Callable[[], Awaitable[None]],
    events: EventFilter,
    *,
    subscribe: Callable[[EventFilter], Any] | None = None,
) -> None:
    """Run `poll` whenever a flow run matching `events` enters a Scheduled state; forever.

    `subscribe(filter)` opens the event stream (Prefect's `get_events_subscriber` unless
    given). Events that arrive while a poll runs fold into the next poll.
    """
    if subscribe is None:
        from prefect.events.clients import get_events_subscriber

        def subscribe(f: EventFilter) -> Any:
            return get_events_subscriber(filter=f, reconnect_on_clean_close=True)

    due = asyncio.Event()

    async def listen() -> None:
        delay = _RETRY_FIRST_S
        while True:
            try:
                async with subscribe(events) as subscriber:
                    log.debug("runner.wake_subscribed")
                    delay = _RETRY_FIRST_S
                    async for event in subscriber:
                        if _is_scheduled(event):
                            due.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the server is restarting, or the stream broke
                log.warning(
                    "runner.wake_stream_lost",
                    error=f"{type(e).__name__}: {e}",
                    retry_in_s=delay,
                    note="new runs start on the next poll meanwhile",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    async def submit() -> None:
        while True:
            await due.wait()
            due.clear()
            try:
                await poll()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the regular poll loop will try again
                log.warning("runner.wake_poll_failed", error=f"{type(e).__name__}: {e}")

    async with asyncio.TaskGroup() as group:
        group.create_task(listen())
        group.create_task(submit())
