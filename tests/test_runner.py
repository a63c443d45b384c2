"""The runner wake-up: events in, polls out (fake event stream); and the Prefect method it
relies on. The real thing, against a Prefect server: tests/e2e/test_runner_wake_e2e.py."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from dualop import runner as wake_module
from dualop.runner import runner_poll, scheduled_runs_filter, wake_on_scheduled_runs

pytestmark = pytest.mark.anyio


def state_event(state_type: str) -> Any:
    """What the wake-up reads of a Prefect event: its resource's labels."""
    return SimpleNamespace(resource={"prefect.state-type": state_type})


class FakeStream:
    """Stands in for `get_events_subscriber`: each subscription yields the next queued
    batch of events (or raises it), then waits for more until closed."""

    def __init__(self) -> None:
        self.subscriptions: list[Any] = []
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    @asynccontextmanager
    async def subscribe(self, events: Any) -> AsyncIterator[AsyncIterator[Any]]:
        self.subscriptions.append(events)
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item

        async def iterate() -> AsyncIterator[Any]:
            for event in item:
                yield event
                await asyncio.sleep(0)  # as from a socket: other tasks run in between
            await asyncio.Event().wait()  # an open stream with nothing more to say

        yield iterate()


class Polls:
    def __init__(self, *, seconds: float = 0.0, fail_first: int = 0) -> None:
        self.count = 0
        self.seconds = seconds
        self.fail_first = fail_first

    async def __call__(self) -> None:
        self.count += 1
        if self.count <= self.fail_first:
            raise RuntimeError("the API answered 503")
        await asyncio.sleep(self.seconds)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def running(coro_factory: Callable[[], Any], check: Callable[[], Any]) -> None:
    task = asyncio.create_task(coro_factory())
    try:
        await check()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_scheduled_run_wakes_the_runner_and_other_states_do_not() -> None:
    stream, polls = FakeStream(), Polls()
    events = scheduled_runs_filter([uuid4()])

    async def check() -> None:
        stream.queue.put_nowait([state_event("RUNNING"), state_event("COMPLETED")])
        await settle()
        assert polls.count == 0
        assert stream.subscriptions == [events]

    await running(lambda: wake_on_scheduled_runs(polls, events, subscribe=stream.subscribe), check)

    stream2, polls2 = FakeStream(), Polls()

    async def check2() -> None:
        stream2.queue.put_nowait([state_event("SCHEDULED")])
        await settle()
        assert polls2.count == 1

    await running(
        lambda: wake_on_scheduled_runs(polls2, events, subscribe=stream2.subscribe), check2
    )


async def test_a_burst_of_new_runs_costs_a_few_polls_not_one_each() -> None:
    stream, polls = FakeStream(), Polls(seconds=0.05)  # each poll takes a while

    async def check() -> None:
        stream.queue.put_nowait([state_event("SCHEDULED")] * 300)
        await asyncio.sleep(0.3)
        # The first event starts a poll; the other 299 arrive during it and fold into one.
        assert polls.count == 2

    await running(
        lambda: wake_on_scheduled_runs(
            polls, scheduled_runs_filter([]), subscribe=stream.subscribe
        ),
        check,
    )


async def test_a_lost_stream_is_subscribed_again_and_a_failed_poll_does_not_stop_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wake_module, "_RETRY_FIRST_S", 0.01)
    stream, polls = FakeStream(), Polls(fail_first=1)

    async def check() -> None:
        stream.queue.put_nowait(ConnectionError("server restarting"))
        stream.queue.put_nowait(OSError("connection refused"))
        stream.queue.put_nowait([state_event("SCHEDULED")])
        await settle()
        assert len(stream.subscriptions) == 3
        assert polls.count == 1  # it failed (a 503): the wake-up carries on
        # A second subscription after the stream ends cleanly.
        stream.queue.put_nowait([state_event("SCHEDULED")])

    await running(
        lambda: wake_on_scheduled_runs(
            polls, scheduled_runs_filter([]), subscribe=stream.subscribe
        ),
        check,
    )


def test_the_filter_asks_for_the_served_deployments_scheduled_runs() -> None:
    a, b = uuid4(), uuid4()
    events = scheduled_runs_filter([a, b])
    assert events.event is not None and events.event.prefix == ["prefect.flow-run."]
    assert events.related is not None
    assert events.related.id == [f"prefect.deployment.{a}", f"prefect.deployment.{b}"]
    assert events.resource is not None and events.resource.labels is not None
    assert events.resource.labels.get("prefect.state-type") == ["SCHEDULED"]


async def test_the_poll_runs_only_while_the_runner_is_up() -> None:
    calls: list[str] = []

    class Runner:
        started = False
        stopping = False

        async def _get_and_submit_flow_runs(self) -> None:
            calls.append("poll")

    runner = Runner()
    poll = runner_poll(runner)  # type: ignore[arg-type]
    assert poll is not None
    await poll()
    runner.started = True
    await poll()
    runner.stopping = True
    await poll()
    assert calls == ["poll"]
    assert runner_poll(object()) is None  # type: ignore[arg-type]


def test_prefects_runner_still_has_the_poll_the_wake_up_calls() -> None:
    """An upgrade of Prefect that renames it must fail here, not quietly fall back to
    polling (dualop/runner.py's module docstring)."""
    from prefect.runner import Runner

    method = getattr(Runner, "_get_and_submit_flow_runs", None)
    assert method is not None and inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self"]
