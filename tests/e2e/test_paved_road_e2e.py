"""The paved road end to end: signed webhook → route → paved-road → live, on a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dualop.catalog import load_catalog
from dualop.deploy.recording import overlaps, read_record
from dualop.settings import load_settings
from dualop.webhooks import PrefectRouteStarter, create_app, github_signature
from tests.e2e.helpers import (
    E2EStack,
    artifacts_of,
    audit,
    children,
    delivery,
    digital_repo,
    heritage_yaml,
    push_payload,
    py,
    service_yaml,
    wait_for,
)
from tests.support import receiver_thread

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret"


@pytest.fixture(scope="module")
def receiver(e2e: E2EStack) -> Iterator[str]:
    """The real webhook receiver on a free port, starting real `route` runs."""
    from dualop.audit import open_audit_log

    os.environ["DUALOP_WEBHOOK__GITHUB_SECRET"] = SECRET
    settings = load_settings()
    app = create_app(
        settings=settings,
        catalog=lambda: load_catalog(e2e.config_dir),
        starter=PrefectRouteStarter(
            settings, lambda: load_catalog(e2e.config_dir), open_audit_log(settings)
        ),
        audit=open_audit_log(settings),
    )
    with receiver_thread(app) as url:
        yield url


def push(url: str, body: bytes, *, delivery_id: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/github",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery_id or delivery(),
            "X-Hub-Signature-256": github_signature(SECRET.encode(), body),
        },
        timeout=30,
    )


def current(e2e: E2EStack, service: str) -> Path:
    return (e2e.data_dir / "deploy" / service / "current").resolve()


def test_signed_push_releases_a_digital_service(e2e: E2EStack, receiver: str) -> None:
    """push → route → paved-road child → live under current, tagged, with artifacts; a
    redelivery of the same delivery id starts nothing new."""
    repo = digital_repo(e2e.root, "web-happy")
    e2e.add_service(
        "web-happy",
        service_yaml(
            "web-happy",
            repo.path,
            health=py(
                "import os,sys; sys.exit(0 if os.path.isfile(os.environ['DUALOP_DEPLOY_DIR'] + '/dist/app') else 1)"
            ),
        ),
    )
    body = push_payload(repo)
    delivery_id = delivery()
    answer = push(receiver, body, delivery_id=delivery_id)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["service"] == "web-happy" and started["model"] == "digital"
    assert started["action"] == "paved-road"
    route = wait_for(started["flow_run_id"])
    assert route.state is not None and route.state.type.value == "COMPLETED", route.state
    [child] = children(route.id)
    assert child.name and child.flow_id != route.flow_id
    assert child.state is not None and child.state.type.value == "COMPLETED"
    live = current(e2e, "web-happy")
    assert live.name == "0.1.0" and (live / "dist" / "app").read_text() == "built"
    assert repo.git("rev-parse", "web-happy/v0.1.0^{commit}") == repo.head()
    keys = {a.key for a in artifacts_of(child.id)}
    assert {"web-happy-release-notes", "web-happy-outcome"} <= keys
    again = push(receiver, body, delivery_id=delivery_id)
    assert again.status_code == 202 and again.json()["flow_run_id"] == started["flow_run_id"]
    outcomes = audit(e2e.data_dir, kind="release.outcome", service="web-happy")
    assert [o["data"]["outcome"] for o in outcomes] == ["released"]


def test_failing_health_check_rolls_back(e2e: E2EStack, receiver: str) -> None:
    """A release whose health check fails: current back on the previous release, run Failed."""
    repo = digital_repo(e2e.root, "web-sick")
    flag = e2e.root / "web-sick-healthy"
    flag.write_text("yes")
    e2e.add_service(
        "web-sick",
        service_yaml(
            "web-sick",
            repo.path,
            health=py(
                f"import pathlib,sys; sys.exit(0 if pathlib.Path({str(flag)!r}).exists() else 1)"
            ),
        ),
    )
    first = wait_for(push(receiver, push_payload(repo)).json()["flow_run_id"])
    assert first.state is not None and first.state.type.value == "COMPLETED"
    flag.unlink()
    repo.commit("fix: breaks the health check")
    second = wait_for(push(receiver, push_payload(repo)).json()["flow_run_id"])
    assert second.state is not None and second.state.type.value == "FAILED"
    assert "rolled back to 0.1.0" in (second.state.message or "")
    assert current(e2e, "web-sick").name == "0.1.0"
    [outcome] = audit(
        e2e.data_dir, kind="release.outcome", service="web-sick", outcome="rolled-back"
    )
    assert outcome["data"]["version"] == "0.1.1"


def test_failing_build_deploys_nothing(e2e: E2EStack, receiver: str) -> None:
    """A build that exits non-zero fails the run before anything is deployed or tagged."""
    repo = digital_repo(e2e.root, "web-broken")
    e2e.add_service(
        "web-broken",
        service_yaml(
            "web-broken", repo.path, build=py("import sys; print('compile error'); sys.exit(3)")
        ),
    )
    run = wait_for(push(receiver, push_payload(repo)).json()["flow_run_id"])
    assert run.state is not None and run.state.type.value == "FAILED"
    assert "exited with status 3" in (run.state.message or "")
    assert not (e2e.data_dir / "deploy" / "web-broken" / "current").exists()
    assert repo.git("tag") == ""


def test_two_quick_pushes_never_overlap_and_the_newest_wins(e2e: E2EStack, receiver: str) -> None:
    """Two pushes in quick succession: deploys never overlap; the newest commit is live."""
    repo = digital_repo(e2e.root, "web-busy")
    e2e.add_service(
        "web-busy",
        service_yaml(
            "web-busy",
            repo.path,
            test=py("import time; time.sleep(2)"),  # the first release holds the lock a while
        ),
    )
    first = repo.head()
    a = push(receiver, push_payload(repo, after=first)).json()["flow_run_id"]
    newest = repo.commit("fix: second")
    b = push(receiver, push_payload(repo, after=newest)).json()["flow_run_id"]
    runs = [wait_for(a, timeout=180), wait_for(b, timeout=180)]
    states = sorted(r.state.type.value for r in runs if r.state)
    assert states in (["COMPLETED", "COMPLETED"], ["CANCELLED", "COMPLETED"]), states
    record = e2e.data_dir / "deploy-record.jsonl"
    assert not overlaps(record)
    mine = [r for r in read_record(record) if r["service"] == "web-busy"]
    assert mine and mine[-1]["commit"] == newest
    live_marker = (current(e2e, "web-busy") / ".dualop-release.json").read_text()
    assert newest in live_marker


def test_heritage_push_is_queued_for_its_window(e2e: E2EStack, receiver: str) -> None:
    """A push for a heritage service deploys nothing; route records it and names the window."""
    repo = digital_repo(e2e.root, "ledger-next")
    e2e.add_service(
        "ledger-next",
        heritage_yaml("ledger-next", repo.path, window="next-year", approvers=["alice"]),
    )
    answer = push(receiver, push_payload(repo))
    assert answer.status_code == 202 and answer.json()["model"] == "heritage"
    route = wait_for(answer.json()["flow_run_id"])
    assert route.state is not None and route.state.type.value == "COMPLETED"
    assert children(route.id) == []
    result = route.state.result()
    assert result.action == "queue-for-window" and result.next_window == "next-year"
    assert result.next_open_at is not None and result.next_open_at.endswith(("+00:00", "+01:00"))
    [pending] = audit(e2e.data_dir, kind="change.pending", service="ledger-next")
    assert pending["data"]["commit"] == repo.head()
    assert not (e2e.data_dir / "deploy" / "ledger-next").exists()


def test_serve_installs_crash_detection_once(e2e: E2EStack) -> None:
    """`dualop serve` installed the automation that marks dead runs Crashed, with the
    default silence; installing it again changes nothing, a new silence replaces it."""
    from datetime import timedelta

    from prefect import get_client

    from flows.deployments import CRASH_AUTOMATION, ensure_crash_detection

    def installed() -> list[timedelta]:
        with get_client(sync_client=True) as client:
            found = client.read_automations_by_name(CRASH_AUTOMATION)
        return [getattr(a.trigger, "within", None) for a in found]

    assert installed() == [timedelta(seconds=90)]
    ensure_crash_detection(timedelta(seconds=90))
    assert installed() == [timedelta(seconds=90)]
    try:
        ensure_crash_detection(timedelta(seconds=120))
        assert installed() == [timedelta(seconds=120)]
    finally:
        ensure_crash_detection(timedelta(seconds=90))
