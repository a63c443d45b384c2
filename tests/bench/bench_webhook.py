"""Benchmark: signed GitHub push → the first task of the paved-road release, and bursts.

    .venv/bin/python tests/bench/bench_webhook.py [--pushes 20] [--services 2]
                                                  [--database sqlite|postgres]
                                                  [--poll 1.0] [--no-wake]
    .venv/bin/python tests/bench/bench_webhook.py --burst [--deliveries 300]
                            [--burst-services 30] [--redeliveries 50] [--connections 4]

Latency (default). On the embedded default (`prefect server start` on SQLite in a temp
folder, or a fresh PostgreSQL database with `--database postgres`), with `dualop serve`
and `dualop webhook` as child processes, exactly as `dualop up` runs them: each sample
commits to a service's repository, POSTs a signed push with a new delivery id, and takes
the time from just before the POST to the `start_time` Prefect recorded for the first
task run of the paved-road run (`fetch-and-resolve`). Pushes are sequential; each
release is waited for, so none supersedes another. In the same run and on the same
server, the baseline: a one-task flow served by its own `serve()` process with the same
runner poll setting, started with `run_deployment(..., timeout=0)`, timed to its first
task run's start. `--no-wake` turns off `dualop serve`'s wake-up on new runs
(dualop/runner.py), to see what it saves. Samples alternate (push, baseline, push, ...) so both see the same
machine load. One warm-up of each is run first and shown apart.

Burst (`--burst`). A fresh server, the `route` deployment registered but NOT served (no
`dualop serve`: the runs stay Scheduled, nothing executes), `dualop webhook`, and N signed
deliveries for many services sent as fast as a few concurrent httpx connections allow,
some of them redeliveries of delivery ids already answered. Prints deliveries accepted
per second, each status code with its bodies, whether redeliveries got their original
run, and the time until every distinct route run exists in Prefect.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import (
    BenchStack,
    bench_stack,
    bounded,
    seconds_between,
    summary,
    wait_final,
)

SECRET = "bench-webhook-secret"
ROUTE = "route/route"
PAVED_ROAD = "paved-road/paved-road"
BASELINE = "bench-bare/bench-bare"
FIRST_PAVED_TASK = "fetch-and-resolve"  # the first task of flows/paved_road.py's flow

# The baseline: one flow with one task, nothing but Prefect imported, served by `serve()`
# with the runner poll `dualop serve` gets (DUALOP_RUNNER_POLL_SECONDS). A module entrypoint,
# like dualop's deployments.
BASELINE_MODULE = """\
from __future__ import annotations

import os

from prefect import flow, serve, task
from prefect.types.entrypoint import EntrypointType


@task(name="first-task")
def first_task() -> None:
    return None


@flow(name="bench-bare")
def bench_bare() -> None:
    first_task()


def main() -> None:
    serve(
        bench_bare.to_deployment("bench-bare", entrypoint_type=EntrypointType.MODULE_PATH),
        limit=20,
        query_seconds=float(os.environ["DUALOP_RUNNER_POLL_SECONDS"]),
    )
"""


# --- services -----------------------------------------------------------------------------


def add_service(stack: BenchStack, name: str) -> Any:
    """A digital service on a real git repo; build and test do nothing, no health check."""
    from tests.e2e.helpers import digital_repo, py, service_yaml

    repo = digital_repo(stack.root, name)
    noop = py("pass")
    (stack.config_dir / "services" / f"{name}.yaml").write_text(
        service_yaml(name, repo.path, build=noop, test=noop)
    )
    return repo


def signed_headers(body: bytes, delivery_id: str) -> dict[str, str]:
    from dualop.webhooks import github_signature

    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": github_signature(SECRET.encode(), body),
    }


def start_receiver(stack: BenchStack) -> str:
    from dualop.stack import free_port, wait_until_healthy

    port = free_port()
    env = dict(stack.env, DUALOP_WEBHOOK__GITHUB_SECRET=SECRET)
    hook = stack.spawn(
        "dualop webhook",
        [sys.executable, "-m", "dualop.cli", "webhook", "--port", str(port)],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(f"{url}/healthz", timeout=60, process=hook)
    return url


# --- reading what Prefect recorded ----------------------------------------------------------


def task_runs(flow_run_id: UUID) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def first_task(flow_run_id: UUID, *, timeout: float = 20) -> Any:
    """The task run of `flow_run_id` that started first (task states reach the server
    as events: poll a little until it shows)."""
    deadline = time.monotonic() + timeout
    while True:
        started = [t for t in task_runs(flow_run_id) if t.start_time is not None]
        if started:
            return min(started, key=lambda t: t.start_time)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no task run of {flow_run_id} started after {timeout:.0f}s")
        time.sleep(0.2)


def paved_road_child(route_run_id: UUID) -> Any:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[route_run_id])
            )
        )
    if len(runs) != 1:
        raise RuntimeError(f"route run {route_run_id} has {len(runs)} child runs, not 1")
    return runs[0]


# --- latency ---------------------------------------------------------------------------------


@dataclass
class Sample:
    answered: float  # seconds from just before the request to its answer
    running: float  # ... to the flow run's start_time (Running)
    first_task: float  # ... to the first task run's start_time
    finished: float  # ... to the (route) flow run's end
    state: str
    task_name: str
    inner: float = float("nan")  # route Running → paved-road first task (webhook only)
    stages: dict[str, float] = field(default_factory=dict)  # the inner span, split (webhook)


# The inner span (route Running → the paved road's first task), split at what Prefect
# records: route's own tasks, then the paved-road child run. Labels in time order.
STAGES = (
    "route Running → resolve-ref start",
    "resolve-ref (fetch, resolve)",
    "→ classify start",
    "classify (fetch, measure, audit)",
    "classify end → child Running",
    "child Running → its first task",
)


def route_stages(route: Any, child: Any, first: Any) -> dict[str, float]:
    by_name = {t.name.rsplit("-", 1)[0]: t for t in task_runs(route.id)}
    resolve, classify = by_name.get("resolve-ref"), by_name.get("classify")
    if resolve is None or classify is None or resolve.start_time is None:
        return {}
    points = [
        route.start_time,
        resolve.start_time,
        resolve.end_time,
        classify.start_time,
        classify.end_time,
        child.start_time,
        first.start_time,
    ]
    return {
        label: seconds_between(a, b) for label, (a, b) in zip(STAGES, pairwise(points), strict=True)
    }


def webhook_sample(url: str, repo: Any, i: int) -> Sample:
    import httpx

    from tests.e2e.helpers import push_payload

    repo.commit(f"fix: change {i}")
    body = push_payload(repo)
    at = datetime.now(UTC)
    t0 = time.perf_counter()
    answer = httpx.post(
        f"{url}/webhooks/github",
        content=body,
        headers=signed_headers(body, str(uuid.uuid4())),
        timeout=60,
    )
    answered = time.perf_counter() - t0
    if answer.status_code != 202:
        raise RuntimeError(f"push {i}: the receiver answered {answer.status_code} {answer.text}")
    route = wait_final(answer.json()["flow_run_id"], timeout=180)
    child = paved_road_child(route.id)
    task = first_task(child.id)
    state = route.state.name if route.state else "?"
    if route.state is not None and route.state.type.value != "COMPLETED":
        state += f" ({(route.state.message or '')[:80]})"
    return Sample(
        answered=answered,
        running=seconds_between(at, route.start_time),
        first_task=seconds_between(at, task.start_time),
        finished=seconds_between(at, route.end_time),
        state=state,
        task_name=task.name,
        inner=seconds_between(route.start_time, task.start_time),
        stages=route_stages(route, child, task),
    )


def baseline_sample() -> Sample:
    from prefect.deployments import run_deployment

    at = datetime.now(UTC)
    t0 = time.perf_counter()
    run: Any = run_deployment(BASELINE, timeout=0)
    answered = time.perf_counter() - t0
    done = wait_final(run.id, timeout=120)
    task = first_task(done.id)
    return Sample(
        answered=answered,
        running=seconds_between(at, done.start_time),
        first_task=seconds_between(at, task.start_time),
        finished=seconds_between(at, done.end_time),
        state=done.state.name if done.state else "?",
        task_name=task.name,
    )


def print_latency(hooks: list[Sample], bases: list[Sample], database: str) -> None:
    def row(label: str, a: list[float], b: list[float] | None) -> None:
        am, ap = summary(a)
        line = f"{label:<34} {am:>8.2f}s {ap:>8.2f}s"
        if b is not None:
            bm, bp = summary(b)
            line += f"   {bm:>8.2f}s {bp:>8.2f}s   {am / bm:>6.2f}x"
        print(line)

    print()
    print(f"{'':<34} {'webhook → paved road':>19}   {'baseline: run_deployment':>19}")
    print(
        f"{'from just before the request to':<34} {'median':>9} {'p95':>9}   "
        f"{'median':>9} {'p95':>9}   {'ratio':>7}"
    )
    row(
        "  the answer (202 / run created)", [s.answered for s in hooks], [s.answered for s in bases]
    )
    row("  the flow run Running", [s.running for s in hooks], [s.running for s in bases])
    row(
        "  the first task started  <==",
        [s.first_task for s in hooks],
        [s.first_task for s in bases],
    )
    row("  the flow run finished", [s.finished for s in hooks], [s.finished for s in bases])
    row("route Running → paved-road 1st task", [s.inner for s in hooks], None)
    for label in STAGES:
        row(f"  {label}", [s.stages[label] for s in hooks if label in s.stages], None)
    med, _ = summary([s.first_task for s in hooks])
    verdict = "met" if med < 2.0 else "NOT met"
    print(
        f"\ntarget: median webhook → first paved-road task < 2 s (on SQLite): {verdict} "
        f"here, on {database.split(' ', 1)[0]} ({med:.2f}s)"
    )


def latency(args: argparse.Namespace, stack: BenchStack) -> None:
    repos = [add_service(stack, f"web-{i}") for i in range(args.services)]
    stack.env["DUALOP_RUNNER_POLL_SECONDS"] = str(args.poll)  # `dualop serve` and baseline
    flows_dir = stack.root / "benchflows"
    flows_dir.mkdir()
    (flows_dir / "bench_bare_flows.py").write_text(BASELINE_MODULE)
    serving = stack.spawn(
        "dualop serve",
        [sys.executable, "-m", "dualop.cli", "serve"],
        env=dict(stack.env, DUALOP_RUNNER_WAKE=str(args.wake).lower()),
    )
    bare = stack.spawn(
        "baseline serve",
        [sys.executable, "-c", "import bench_bare_flows; bench_bare_flows.main()"],
        env=dict(stack.env, PYTHONPATH=str(flows_dir)),
        cwd=flows_dir,
    )
    url = start_receiver(stack)
    for name in (ROUTE, PAVED_ROAD):
        stack.wait_deployment(name, serving)
    stack.wait_deployment(BASELINE, bare)
    print(
        f"served: dualop serve (route, paved-road, ...; wake-up on new runs "
        f"{'on' if args.wake else 'OFF'}) and the baseline flow (plain serve()), runner poll "
        f"every {args.poll}s; receiver: dualop webhook "
        f"(subprocess); {args.services} service(s), build/test `python -c pass`, deploy local, "
        "no health check",
        flush=True,
    )
    warm_hook = webhook_sample(url, repos[0], -1)
    warm_base = baseline_sample()
    print(
        f"warm-up (not counted): webhook → first task {warm_hook.first_task:.2f}s "
        f"[{warm_hook.state}], baseline {warm_base.first_task:.2f}s",
        flush=True,
    )
    hooks: list[Sample] = []
    bases: list[Sample] = []
    for i in range(args.pushes):
        hooks.append(webhook_sample(url, repos[i % len(repos)], i))
        bases.append(baseline_sample())
        h, b = hooks[-1], bases[-1]
        print(
            f"  {i + 1:>3}/{args.pushes} webhook {h.first_task:5.2f}s "
            f"(first task {h.task_name}, release {h.state}, done at {h.finished:5.2f}s)   "
            f"baseline {b.first_task:5.2f}s ({b.task_name})",
            flush=True,
        )
    bad = [s.state for s in hooks if not s.state.startswith("Completed")]
    if bad:
        print(f"\n{len(bad)} release(s) did not complete: {Counter(bad).most_common()}")
    # Prefect names a task run `<task name>-<3 hex digits>`.
    wrong = {s.task_name.rsplit("-", 1)[0] for s in hooks} - {FIRST_PAVED_TASK}
    if wrong:
        print(f"\nnote: first paved-road task was not {FIRST_PAVED_TASK}: {sorted(wrong)}")
    print_latency(hooks, bases, stack.database)
    server_log = stack.root / "logs" / "prefect-server.log"
    print(
        f"503s the Prefect API answered during the run (server log): "
        f"{count_lines(server_log, RETRYABLE)}; Prefect's client retries each after ~2 s"
    )


# --- burst --------------------------------------------------------------------------------------


@dataclass
class Delivery:
    delivery_id: str
    service: str
    body: bytes
    redelivery: bool = False  # repeats the delivery id of an earlier one
    status: int = 0
    answer: str = ""
    run_id: str | None = None
    seconds: float = float("nan")
    done: asyncio.Event = field(default_factory=asyncio.Event)


def plan_burst(args: argparse.Namespace, repos: dict[str, Any], shas: list[str]) -> list[Delivery]:
    """`deliveries - redeliveries` distinct deliveries (fresh ids) over the services, one
    commit each, with the redeliveries placed well after the delivery they repeat."""
    from tests.e2e.helpers import push_payload

    rng = random.Random(args.seed)
    distinct = args.deliveries - args.redeliveries
    names = sorted(repos)
    plan: list[Delivery] = []
    for i in range(distinct):
        name = names[i % len(names)]
        body = push_payload(repos[name], after=shas[i])
        plan.append(Delivery(str(uuid.uuid4()), name, body))
    originals = list(plan)
    gap = max(1, 2 * args.connections)
    for _ in range(args.redeliveries):
        first = originals[rng.randrange(0, max(1, distinct - gap))]
        index = next(i for i, d in enumerate(plan) if d is first)
        position = rng.randrange(index + gap, len(plan) + 1)
        plan.insert(position, Delivery(first.delivery_id, first.service, first.body, True))
    return plan


Send = Callable[[Delivery], Awaitable[None]]


async def run_burst(plan: list[Delivery], connections: int, send: Send) -> float:
    """Send `plan` from `connections` concurrent workers; a redelivery waits until its
    original was answered. Returns the wall time."""
    by_delivery = {d.delivery_id: d for d in plan if not d.redelivery}
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in plan:
        queue.put_nowait(d)

    async def worker() -> None:
        while True:
            try:
                d = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if d.redelivery:
                await asyncio.wait_for(by_delivery[d.delivery_id].done.wait(), timeout=300)
            t0 = time.perf_counter()
            await send(d)
            d.seconds = time.perf_counter() - t0
            d.done.set()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0


async def burst_receiver(url: str, plan: list[Delivery], connections: int) -> float:
    """Signed GitHub pushes to `dualop webhook` over `connections` HTTP connections."""
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def send(d: Delivery) -> None:
            try:
                answer = await client.post(
                    f"{url}/webhooks/github",
                    content=d.body,
                    headers=signed_headers(d.body, d.delivery_id),
                )
            except httpx.HTTPError as e:
                d.status, d.answer = -1, f"{type(e).__name__}: {e}"
                return
            d.status, d.answer = answer.status_code, answer.text
            if answer.status_code == 202:
                d.run_id = answer.json()["flow_run_id"]

        return await run_burst(plan, connections, send)


async def burst_direct(plan: list[Delivery], connections: int) -> float:
    """The baseline: the same runs created straight through Prefect's client
    (`arun_deployment(..., timeout=0, idempotency_key=...)`, as the receiver does), one
    shared client, `connections` at a time. "202" here means "run created"."""
    import json

    from prefect import get_client
    from prefect.deployments import arun_deployment

    async with get_client() as client:

        async def send(d: Delivery) -> None:
            push = json.loads(d.body)
            try:
                run = await arun_deployment(
                    ROUTE,
                    client=client,
                    parameters={
                        "service": d.service,
                        "ref": push["after"],
                        "trigger": "webhook",
                        "requested_by": push["pusher"]["name"],
                    },
                    timeout=0,
                    idempotency_key=f"github:{d.delivery_id}",
                )
            except Exception as e:  # reported with the status codes
                d.status, d.answer = -1, f"{type(e).__name__}: {e}"
                return
            d.status, d.run_id = 202, str(run.id)

        return await run_burst(plan, connections, send)


def count_route_runs(deployment_id: UUID) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.count_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def count_lines(path: Path, pattern: str) -> int:
    if not path.exists():
        return 0
    rx = re.compile(pattern)
    return sum(1 for line in path.read_text(errors="replace").splitlines() if rx.search(line))


@dataclass
class BurstResult:
    plan: list[Delivery]
    elapsed: float
    all_there: float  # first request sent → every accepted delivery's run in Prefect
    created: int  # runs of the deployment that appeared
    expected: int
    server_503: int  # "Encountered retryable exception in request" lines in the server log
    locked: int  # "database is locked" lines in the server log
    receiver_retries: int


def measure_burst(
    stack: BenchStack, deployment_id: UUID, plan: list[Delivery], sender: Coroutine[Any, Any, float]
) -> BurstResult:
    server_log = stack.root / "logs" / "prefect-server.log"
    hook_log = stack.log_of("dualop webhook")
    marks = (
        count_lines(server_log, RETRYABLE),
        count_lines(server_log, "database is locked"),
        count_lines(hook_log, r"dualop\.webhook\.prefect_retry"),
    )
    before = count_route_runs(deployment_id)
    started = time.perf_counter()
    elapsed = asyncio.run(sender)
    expected = len({d.delivery_id for d in plan if d.status == 202})
    present = count_route_runs(deployment_id) - before
    deadline = time.monotonic() + 120
    while present < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        present = count_route_runs(deployment_id) - before
    all_there = time.perf_counter() - started
    return BurstResult(
        plan,
        elapsed,
        all_there,
        present,
        expected,
        count_lines(server_log, RETRYABLE) - marks[0],
        count_lines(server_log, "database is locked") - marks[1],
        count_lines(hook_log, r"dualop\.webhook\.prefect_retry") - marks[2],
    )


RETRYABLE = r"Encountered retryable exception in request"


def print_burst(hook: BurstResult, direct: BurstResult) -> None:
    def facts(r: BurstResult) -> dict[str, str]:
        statuses = Counter(d.status for d in r.plan)
        accepted = statuses.get(202, 0)
        med, p95 = summary([d.seconds for d in r.plan])
        redeliveries = [d for d in r.plan if d.redelivery]
        first_run = {d.delivery_id: d.run_id for d in r.plan if not d.redelivery}
        same = sum(1 for d in redeliveries if d.run_id and d.run_id == first_run[d.delivery_id])
        there = "all there" if r.created >= r.expected else "NOT all there"
        return {
            "requests sent": str(len(r.plan)),
            "wall time": f"{r.elapsed:.2f}s",
            "requests/s": f"{len(r.plan) / r.elapsed:.1f}",
            "accepted (202, run created)/s": f"{accepted / r.elapsed:.1f}",
            "status codes": " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
            "answer time median": f"{med * 1000:.0f} ms",
            "answer time p95": f"{p95 * 1000:.0f} ms",
            "answers slower than 10 s": str(sum(1 for d in r.plan if d.seconds > 10)),
            "redeliveries → original's run": f"{same}/{len(redeliveries)}",
            "runs created / distinct accepted": f"{r.created}/{r.expected}",
            "until every run exists": f"{r.all_there:.2f}s ({there})",
            "503s from the Prefect API": str(r.server_503),
            "'database is locked' in server log": str(r.locked),
            "receiver's own retries": str(r.receiver_retries),
        }

    a, b = facts(hook), facts(direct)
    print()
    print(f"{'':<36} {'dualop webhook':>18}   {'baseline: arun_deployment':>26}")
    for key in a:
        print(f"{key:<36} {a[key]:>18}   {b[key]:>26}")
    for label, r in (("webhook", hook), ("baseline", direct)):
        bad = Counter((d.status, d.answer[:300]) for d in r.plan if d.status != 202)
        for (status, body), n in bad.most_common():
            print(f"{label}: {n} x {status}: {body}")
    print(
        "\n503s from the Prefect API are counted from the server's log "
        "(PREFECT_API_LOG_RETRYABLE_ERRORS=true); each answered "
        '{"exception_message": "Service Unavailable"} and was retried inside Prefect\'s '
        "client (PREFECT_CLIENT_MAX_RETRIES=5, backoff about 2, 4, 8, 16, 32 s), so the "
        "sender sees a slow 202, not a 503. GitHub gives up on a delivery after 10 s."
    )


def burst(args: argparse.Namespace, stack: BenchStack) -> None:
    from prefect import get_client

    from dualop.catalog import load_catalog
    from flows.deployments import build_deployments

    t0 = time.perf_counter()
    names = [f"svc-{i:02d}" for i in range(args.burst_services)]
    repos = {name: add_service(stack, name) for name in names}
    distinct = args.deliveries - args.redeliveries
    shas = [repos[names[i % len(names)]].commit(f"fix: burst change {i}") for i in range(distinct)]
    [route] = [d for d in build_deployments(load_catalog(stack.config_dir)) if d.name == "route"]
    deployment_id = route.apply()  # registered, not served: the runs stay Scheduled
    url = start_receiver(stack)
    catalog_s = []
    for _ in range(10):
        c0 = time.perf_counter()
        load_catalog(stack.config_dir)
        catalog_s.append(time.perf_counter() - c0)
    print(
        f"burst: {args.deliveries} requests ({distinct} distinct delivery ids, "
        f"{args.redeliveries} redeliveries of ids already answered) for {len(repos)} services "
        f"over {args.connections} concurrent connections. `route` is registered but NOT "
        "served (no `dualop serve`): the runs stay Scheduled and nothing executes. Receiver: "
        "`dualop webhook` (subprocess). Baseline first, its runs deleted, then the webhook, "
        "same server. "
        f"Set up in {time.perf_counter() - t0:.1f}s; the receiver loads the catalog "
        f"({len(repos)} files) per delivery: median {summary(catalog_s)[0] * 1000:.0f} ms here.",
        flush=True,
    )
    direct_plan = plan_burst(args, repos, shas)
    direct = measure_burst(
        stack, deployment_id, direct_plan, burst_direct(direct_plan, args.connections)
    )
    print(f"baseline done in {direct.elapsed:.1f}s", flush=True)
    # The server marks Scheduled runs Late (more writes): delete the baseline's runs so
    # the webhook phase starts, like the baseline did, from an empty deployment.
    d0 = time.perf_counter()
    with get_client(sync_client=True) as client:
        for rid in {d.run_id for d in direct_plan if d.run_id}:
            client.delete_flow_run(UUID(rid))
    print(f"deleted the baseline's runs in {time.perf_counter() - d0:.1f}s", flush=True)
    hook_plan = plan_burst(args, repos, shas)
    hook = measure_burst(
        stack, deployment_id, hook_plan, burst_receiver(url, hook_plan, args.connections)
    )
    print(f"webhook burst done in {hook.elapsed:.1f}s", flush=True)
    print_burst(hook, direct)
    states: Counter[str] = Counter()
    with get_client(sync_client=True) as client:
        for rid in [d.run_id for d in hook_plan if d.run_id][:50]:
            run = client.read_flow_run(UUID(rid))
            states[(run.state.name if run.state else None) or "?"] += 1
    print(f"states of 50 of the webhook's runs: {dict(states)} (nothing serves them)")


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pushes", type=int, default=20, help="latency samples (default 20)")
    parser.add_argument("--services", type=int, default=2, help="services pushed in turn")
    parser.add_argument("--burst", action="store_true", help="run the burst instead")
    parser.add_argument("--deliveries", type=int, default=300, help="burst: requests sent")
    parser.add_argument("--burst-services", type=int, default=30)
    parser.add_argument("--redeliveries", type=int, default=50, help="burst: of --deliveries")
    parser.add_argument("--connections", type=int, default=4, help="burst: concurrent")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    parser.add_argument(
        "--poll", type=float, default=1.0, help="runner poll in seconds (both flows)"
    )
    parser.add_argument(
        "--no-wake",
        dest="wake",
        action="store_false",
        help="dualop serve without its wake-up on new runs (DUALOP_RUNNER_WAKE=false)",
    )
    parser.add_argument("--time-limit", type=int, default=1800, help="seconds, then stop")
    args = parser.parse_args()
    if args.pushes < 1 or args.services < 1 or not 0 <= args.redeliveries < args.deliveries:
        parser.error("need --pushes >= 1, --services >= 1, 0 <= --redeliveries < --deliveries")
    title = "webhook burst" if args.burst else "webhook → first paved-road task"
    with bounded(args.time_limit) as exits:
        stack = bench_stack(
            exits,
            database=args.database,
            prefix="dualop-bench-webhook",
            title=title,
            keep_logs=args.keep_logs,
        )
        with contextlib.suppress(BrokenPipeError):
            (burst if args.burst else latency)(args, stack)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
