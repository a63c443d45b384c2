"""The webhook burst: 300 signed deliveries for 30 services, on SQLite and on PostgreSQL.

The real receiver (`create_app` + `PrefectRouteStarter`, uvicorn in a thread) in front of
a real `prefect server start`, on the embedded default (SQLite) and on a fresh PostgreSQL
database. The `route` deployment is registered but not served: the runs it gets stay
Scheduled, so what is tested is that every delivery is answered and every run created,
once. Sent as fast as one httpx client with a few connections can:

- 200 distinct deliveries: 180 pushes to the release branch (6 per service) and 20
  pushes the receiver skips with a reason (a feature branch, a branch deletion);
- 50 redeliveries of delivery ids already used, placed after their original but close
  enough to run concurrently with it;
- 50 bad requests, 10 of each: a bad signature (401), a body that is not JSON (400),
  a wrong content type (415), an unknown repository (404), an oversize body (413).

Checked: no 5xx at all; every bad request refused with its 4xx; every valid delivery
answered with a run (202) or an explained skip recorded in the audit log; exactly one
`route` run per distinct delivery id (counted in Prefect), and every redelivery answered
with its original run. Prints deliveries per second and the time until every run exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from dualop.audit import FileAuditLog
from dualop.catalog import load_catalog
from dualop.settings import Settings, WebhookSettings
from dualop.testing import RepoBuilder
from dualop.webhooks import (
    PrefectRouteStarter,
    PrefectUnavailable,
    create_app,
    github_signature,
)
from tests.e2e.helpers import service_yaml
from tests.suites.conftest import suite_stack
from tests.support import postgres_database, receiver_thread

SECRET = "burst-webhook-secret"
SERVICES = 30
RELEASES_PER_SERVICE = 6
SKIPPED = 20  # half feature-branch pushes, half branch deletions
REDELIVERIES = 50
BAD_PER_KIND = 10
LIMIT = 16 * 1024  # webhook.max_body_bytes for the burst; oversize bodies are 20-40 KiB
CONNECTIONS = 8
SEED = 20260505
REQUEST_TIMEOUT_S = 300.0  # a sender gives up after this; bounds the test too

BAD_KINDS = {
    "bad-signature": 401,
    "bad-json": 400,
    "wrong-content-type": 415,
    "unknown-repo": 404,
    "oversize": 413,
}


@dataclass
class Delivery:
    kind: str  # release | skipped | redelivery | one of BAD_KINDS
    delivery_id: str
    service: str | None
    body: bytes
    headers: dict[str, str]
    expect: int


@dataclass
class Answer:
    delivery: Delivery
    status: int
    body: dict[str, Any]
    seconds: float
    done_at: float


# --- the deliveries --------------------------------------------------------------------------


def _payload(repo: RepoBuilder, *, branch: str = "main", deleted: bool = False) -> bytes:
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": repo.head(),
            "after": "0" * 40 if deleted else repo.head(),
            "deleted": deleted,
            "repository": {"clone_url": f"file://{repo.path}"},
            "pusher": {"name": "burst"},
        }
    ).encode()


def _signed(body: bytes, delivery_id: str, *, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": github_signature(secret.encode(), body),
    }


def _bad(kind: str, repo: RepoBuilder, rng: random.Random, root: Path) -> Delivery:
    did = str(uuid.uuid4())
    body = _payload(repo)
    headers = _signed(body, did)
    match kind:
        case "bad-signature":
            headers = _signed(body, did, secret="not-the-secret")
        case "bad-json":
            body = b'{"ref": "refs/heads/main", "after": '  # cut short
            headers = _signed(body, did)
        case "wrong-content-type":
            ctype = rng.choice(["text/plain", "application/x-www-form-urlencoded"])
            headers = {**headers, "Content-Type": ctype}
        case "unknown-repo":
            payload = json.loads(body)
            payload["repository"] = {"clone_url": f"file://{root / 'no-such-repo'}"}
            body = json.dumps(payload).encode()
            headers = _signed(body, did)
        case "oversize":
            payload = json.loads(body)
            payload["padding"] = "x" * rng.randint(20 * 1024, 40 * 1024)
            body = json.dumps(payload).encode()
            headers = _signed(body, did)
    return Delivery(kind, did, None, body, headers, BAD_KINDS[kind])


def plan_deliveries(repos: dict[str, RepoBuilder], root: Path) -> list[Delivery]:
    """The 300 requests, in the order they are sent (seeded, so reruns send the same mix)."""
    rng = random.Random(SEED)
    names = sorted(repos)
    firsts: list[Delivery] = []
    for name in names:
        for _ in range(RELEASES_PER_SERVICE):
            did = str(uuid.uuid4())
            body = _payload(repos[name])
            firsts.append(Delivery("release", did, name, body, _signed(body, did), 202))
    for i in range(SKIPPED):
        name = names[i % len(names)]
        did = str(uuid.uuid4())
        body = (
            _payload(repos[name], branch="feature/burst")
            if i % 2
            else _payload(repos[name], deleted=True)
        )
        firsts.append(Delivery("skipped", did, name, body, _signed(body, did), 200))
    for kind in BAD_KINDS:
        firsts += [_bad(kind, repos[rng.choice(names)], rng, root) for _ in range(BAD_PER_KIND)]
    rng.shuffle(firsts)
    order = list(firsts)
    releases = [d for d in firsts if d.kind == "release"]
    for original in rng.sample(releases, REDELIVERIES):
        # Right behind its original: within the same few in-flight requests.
        at = order.index(original) + 1 + rng.randint(0, CONNECTIONS)
        again = Delivery(
            "redelivery",
            original.delivery_id,
            original.service,
            original.body,
            dict(original.headers),
            202,
        )
        order.insert(min(at, len(order)), again)
    return order


async def send_all(url: str, deliveries: list[Delivery]) -> tuple[list[Answer], float]:
    """POST every delivery through one client with CONNECTIONS connections; (answers, s)."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, pool=None)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        slots = asyncio.Semaphore(CONNECTIONS)

        async def one(d: Delivery) -> Answer:
            async with slots:  # latency is the receiver's, not time queued in the client
                t0 = time.perf_counter()
                try:
                    response = await client.post(
                        "/webhooks/github", content=d.body, headers=d.headers
                    )
                except httpx.HTTPError as e:  # no answer at all: reported, not raised
                    done = time.perf_counter()
                    return Answer(d, 0, {"exception": repr(e)}, done - t0, done)
                done = time.perf_counter()
            try:
                body = response.json()
            except ValueError:
                body = {"unparsed": response.text[:200]}
            return Answer(d, response.status_code, body, done - t0, done)

        start = time.perf_counter()
        answers = await asyncio.gather(*(one(d) for d in deliveries))
        return list(answers), start


class CountingStarter(PrefectRouteStarter):
    """The real starter, counting its attempts at creating a run and why they failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attempts = 0
        self.failures: Counter[str] = Counter()

    async def _create_run(self, parameters: dict[str, Any], idempotency_key: str) -> str:
        self.attempts += 1
        try:
            return await super()._create_run(parameters, idempotency_key)
        except PrefectUnavailable as e:
            self.failures[str(e).split(" at http", 1)[0]] += 1
            raise


# --- reading Prefect -----------------------------------------------------------------------


def route_runs(deployment_id: UUID) -> list[Any]:
    """Every flow run of the route deployment (paged)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    runs: list[Any] = []
    flt = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(flow_run_filter=flt, limit=200, offset=len(runs))
            runs += page
            if len(page) < 200:
                return runs


def count_route_runs(deployment_id: UUID) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    flt = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
    with get_client(sync_client=True) as client:
        return int(client.count_flow_runs(flow_run_filter=flt))


def register_route(config_dir: Path) -> UUID:
    """The `route` deployment, registered as `dualop serve` would, but not served."""
    from flows.deployments import build_deployments

    [route] = [d for d in build_deployments(load_catalog(config_dir)) if d.name == "route"]
    return UUID(str(route.apply()))


# --- the test --------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "database",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def test_burst_of_deliveries(
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """300 deliveries as fast as they can be sent: every one answered as it should be, no
    5xx, one run per distinct delivery id, redeliveries get their original run."""
    with (
        postgres_database("dualop_burst")
        if database == "postgres"
        else contextlib.nullcontext() as database_url,
        suite_stack(
            tmp_path / "stack",
            database_url=database_url,
            # Each 503 the API answers is logged, so the count below is real: Prefect's
            # client retries them without a trace.
            extra_env={"PREFECT_API_LOG_RETRYABLE_ERRORS": "true"},
        ) as stack,
    ):
        repos = {}
        for i in range(SERVICES):
            name = f"burst-{i:02d}"
            repos[name] = RepoBuilder.init(stack.root / "repos" / name)
            repos[name].commit("feat: first", files={"app.py": "VERSION = 1\n"})
            stack.add_service(name, service_yaml(name, repos[name].path))
        deployment_id = register_route(stack.config_dir)
        settings = Settings(
            config_dir=stack.config_dir,
            data_dir=stack.data_dir,
            webhook=WebhookSettings(github_secret=SecretStr(SECRET), max_body_bytes=LIMIT),
        )
        audit = FileAuditLog(settings.audit_path)

        def catalog() -> Any:  # as `dualop webhook` does: read for each push
            return load_catalog(stack.config_dir)

        starter = CountingStarter(settings, catalog, audit)
        app = create_app(settings=settings, catalog=catalog, starter=starter, audit=audit)
        deliveries = plan_deliveries(repos, stack.root)
        assert len(deliveries) == 300
        with receiver_thread(app) as url:
            answers, started = asyncio.run(send_all(url, deliveries))
            burst_s = max(a.done_at for a in answers) - started
        distinct = {d.delivery_id for d in deliveries if d.kind == "release"}
        t_all = time.perf_counter()
        deadline = t_all + 60
        while count_route_runs(deployment_id) < len(distinct) and time.perf_counter() < deadline:
            time.sleep(0.2)
        all_runs_s = time.perf_counter() - started

        # --- figures ---
        statuses = Counter(a.status for a in answers)
        latencies = sorted(a.seconds for a in answers)
        accepted = statuses.get(202, 0)
        slowest = sorted(answers, key=lambda a: -a.seconds)[:3]
        server_log = (stack.root / "logs" / "prefect-server.log").read_text(errors="replace")
        # One line per 503 (PREFECT_API_LOG_RETRYABLE_ERRORS): on SQLite, "database is locked".
        retried = server_log.count("Encountered retryable exception in request")
        with capsys.disabled():
            print(
                f"\n[burst {database}] {len(answers)} deliveries in {burst_s:.2f}s over "
                f"{CONNECTIONS} connections: {len(answers) / burst_s:.1f} deliveries/s, "
                f"{accepted / burst_s:.1f} accepted (202)/s; statuses "
                f"{dict(sorted(statuses.items()))}; latency median "
                f"{statistics.median(latencies) * 1000:.0f} ms, p95 "
                f"{latencies[int(0.95 * (len(latencies) - 1))] * 1000:.0f} ms, max "
                f"{latencies[-1] * 1000:.0f} ms; all {len(distinct)} route runs existed "
                f"{all_runs_s:.2f}s after the first request; run creations tried "
                f"{starter.attempts} times for {accepted} runs, failures "
                f"{dict(starter.failures) or 'none'}; load average {os.getloadavg()[0]:.1f} on "
                f"{len(os.sched_getaffinity(0))} CPUs; slowest "
                f"{[(a.delivery.kind, a.status, round(a.seconds, 1)) for a in slowest]}; "
                f"503s the API answered (retried by Prefect's client; 'database is locked' "
                f"on SQLite), from the server log: {retried}"
            )

        # --- an answer to each, no 5xx, and every bad request refused with its 4xx ---
        server_errors = [
            (a.delivery.kind, a.status, round(a.seconds, 1), a.body)
            for a in answers
            if a.status >= 500 or a.status == 0
        ]
        assert not server_errors, server_errors[:5]
        for a in answers:
            if a.delivery.kind in BAD_KINDS:
                assert a.status == a.delivery.expect, (a.delivery.kind, a.status, a.body)
                assert isinstance(a.body.get("error"), str) and a.body["error"], a.body

        # --- every valid delivery accounted for ---
        first_run: dict[str, str] = {}
        for a in answers:
            if a.delivery.kind == "release":
                assert a.status == 202, (a.status, a.body)
                assert a.body["service"] == a.delivery.service
                first_run[a.delivery.delivery_id] = a.body["flow_run_id"]
        assert set(first_run) == distinct
        entries = audit.entries(kinds=["webhook.received"])
        ignored = {e.data["delivery"]: e for e in entries if e.data["outcome"] == "ignored"}
        for a in answers:
            if a.delivery.kind == "skipped":
                assert a.status == 200 and a.body["ignored"] is True, a.body
                entry = ignored[a.delivery.delivery_id]  # the skip is on record, explained
                assert entry.service == a.delivery.service
                assert entry.data["reason"] == a.body["reason"] and a.body["reason"]
            if a.delivery.kind == "redelivery":
                assert a.status == 202, (a.status, a.body)
                assert a.body["flow_run_id"] == first_run[a.delivery.delivery_id]
        started_entries = [e for e in entries if e.data["outcome"] == "started"]
        assert {e.data["delivery"]: e.run_id for e in started_entries} == first_run
        assert audit.verify() == len(audit.entries())

        # --- exactly one run per distinct delivery id ---
        runs = route_runs(deployment_id)
        assert len(runs) == len(distinct), f"{len(runs)} runs for {len(distinct)} deliveries"
        assert {str(r.id) for r in runs} == set(first_run.values())
        assert sorted(r.idempotency_key for r in runs) == sorted(f"github:{d}" for d in distinct)
        by_id = {str(r.id): r for r in runs}
        for did, run_id in first_run.items():
            delivery = next(d for d in deliveries if d.delivery_id == did)
            assert by_id[run_id].parameters["service"] == delivery.service
            assert by_id[run_id].state is not None
            assert by_id[run_id].state.type.value == "SCHEDULED"  # created, never served


# --- the starter's retry, without a server ------------------------------------------------------
