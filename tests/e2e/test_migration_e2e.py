"""The heritage migration end to end, on a real Prefect server with real git repos."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dualop.cli import main
from dualop.testing import RepoBuilder
from flows.prefect_api import active_runs, resume, start_deployment
from tests.e2e.helpers import E2EStack, audit, heritage_yaml, py, wait_for
from tests.support import ops_inbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ops_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint that records what apprise's json:// sends to it."""
    with ops_inbox() as inbox:
        yield inbox


def heritage(
    e2e: E2EStack,
    name: str,
    notify: str,
    *,
    window: str = "always",
    required: int = 2,
    fail_verify: str = "",
    estimate: str = "1m",
) -> tuple[RepoBuilder, Path]:
    """A heritage service with three logged steps; returns its repo and the step log."""
    repo = RepoBuilder.init(e2e.root / "repos" / name)
    repo.commit("ledger: CR-1", author="Jean Sammet")
    log = e2e.root / f"{name}-steps.log"
    steps = []
    for step in ("backup", "migrate", "reindex"):

        def argv(stage: str, step: str = step) -> str:
            code = 1 if (step, stage) == (fail_verify, "verify") else 0
            return json.dumps(
                py(
                    f"import sys; open({str(log)!r}, 'a').write('{stage} {step}\\n'); sys.exit({code})"
                )
            )

        steps.append(
            f"{{name: {step}, apply: {argv('apply')}, verify: {argv('verify')}, "
            f"rollback: {argv('rollback')}, estimate: {estimate}}}"
        )
    e2e.add_service(
        name,
        heritage_yaml(
            name,
            repo.path,
            window=window,
            approvers=["alice", "bob", "carol", "test"],
            required=required,
            steps=steps,
            notify=notify,
        ),
    )
    return repo, log


def awaiting(service: str, *, timeout: float = 120) -> str:
    """The migration run of `service` once it waits at the approval gate."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in active_runs("migration", service):
            if run.waiting_for == "approval":
                return run.id
        time.sleep(0.5)
    raise AssertionError(f"no migration of {service} reached the approval gate")


def approve_in_ui(run_id: str, who: str, digest: str, decision: str = "approve") -> None:
    """What the Prefect UI's Resume form sends."""
    resume(run_id, {"decision": decision, "approver": who, "comment": "ok", "plan_digest": digest})


def gate(e2e: E2EStack, run_id: str) -> dict[str, Any]:
    return audit(e2e.data_dir, kind="approval.requested", run_id=run_id)[-1]["data"]


def wait_gate_again(e2e: E2EStack, service: str, run_id: str, count: int) -> None:
    """Wait until the run is back at the gate having recorded `count` decisions."""
    import time

    for _ in range(240):
        done = audit(e2e.data_dir, run_id=run_id, kind="approval.decision") + audit(
            e2e.data_dir, run_id=run_id, kind="approval.refused"
        )
        if len(done) >= count and awaiting(service) == run_id:
            return
        time.sleep(0.5)
    raise AssertionError("the run did not come back to the gate")


def test_window_opening_approvals_steps_tag_handover(
    e2e: E2EStack,
    ops_endpoint: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """window opens → migration → gate → approvals (UI form, then `dualop approve`) → steps
    → tag → ops squad notified over real HTTP → audit chain verifies."""
    url, received = ops_endpoint
    repo, log = heritage(e2e, "ledger-main", url)
    window_run = start_deployment("migration-window/migration-window", {"window": "always"})
    wait_for(window_run)
    run_id = awaiting("ledger-main")
    digest = gate(e2e, run_id)["plan_digest"]
    approve_in_ui(run_id, "alice", digest)
    wait_gate_again(e2e, "ledger-main", run_id, 1)
    assert main(["approvals", "--json"]) == 0
    inbox = [i for i in json.loads(capsys.readouterr().out) if i["flow_run_id"] == run_id]
    assert inbox and inbox[0]["approvals"] == ["alice"] and inbox[0]["required"] == 2
    assert main(["approve", run_id, "--as", "bob", "--comment", "ops ready"]) == 0
    final = wait_for(run_id, timeout=180)
    assert final.state is not None and final.state.type.value == "COMPLETED", final.state
    assert log.read_text().splitlines() == [
        "apply backup",
        "verify backup",
        "apply migrate",
        "verify migrate",
        "apply reindex",
        "verify reindex",
    ]
    assert repo.git("tag") == "ledger-main/v0.1.0"
    assert any("ledger-main" in m.get("title", "") for m in received)
    assert (
        "Rollback plan"
        in next(m for m in received if "ledger-main" in m.get("title", ""))["message"]
    )
    decisions = audit(e2e.data_dir, kind="approval.decision", run_id=run_id)
    assert [(d["data"]["approver"], d["data"]["via"]) for d in decisions] == [
        ("alice", "ui"),
        ("bob", "cli"),
    ]
    assert decisions[0]["data"]["approver_identity"] == "self-asserted"
    assert main(["audit", "verify"]) == 0


def test_refusals_rejection_and_lapse(
    e2e: E2EStack,
    ops_endpoint: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Self-approval and strangers are refused (still waiting); a moved branch lapses an
    approval; a rejection ends the run with nothing applied."""
    url, _ = ops_endpoint
    repo, log = heritage(e2e, "ledger-gate", url)
    repo.commit("ledger: CR-1a")  # by Test Author <test.author@...>: "test" may be them
    start_deployment(
        "migration/migration", {"service": "ledger-gate", "trigger": "cli", "requested_by": "carol"}
    )
    run_id = awaiting("ledger-gate")
    assert main(["approve", run_id, "--as", "test"]) == 2  # an author of the change
    assert "self-approval" in capsys.readouterr().err
    assert main(["approve", run_id, "--as", "dave"]) == 2  # a person, not an approver here
    assert "not an approver" in capsys.readouterr().err
    assert main(["approve", run_id, "--as", "carol"]) == 2  # the requester
    assert awaiting("ledger-gate") == run_id
    refused = audit(e2e.data_dir, kind="approval.refused", run_id=run_id)
    assert [r["data"]["approver"] for r in refused] == ["test", "dave", "carol"]
    first_digest = gate(e2e, run_id)["plan_digest"]
    approve_in_ui(run_id, "alice", first_digest)
    wait_gate_again(e2e, "ledger-gate", run_id, 1)
    repo.commit("ledger: CR-2", author="Jean Sammet")  # the branch moves on
    approve_in_ui(run_id, "bob", first_digest)  # resumes the run: it sees the new plan
    import time

    for _ in range(240):
        if gate(e2e, run_id)["plan_digest"] != first_digest and awaiting("ledger-gate") == run_id:
            break
        time.sleep(0.5)
    assert gate(e2e, run_id)["plan_digest"] != first_digest
    assert audit(e2e.data_dir, kind="approval.lapsed", run_id=run_id)
    assert main(["approvals", "--json"]) == 0
    [item] = [i for i in json.loads(capsys.readouterr().out) if i["flow_run_id"] == run_id]
    assert item["approvals"] == []  # alice's approval was for the old plan
    assert main(["reject", run_id, "--as", "bob", "--comment", "not this week"]) == 0
    final = wait_for(run_id)
    assert final.state is not None and final.state.type.value == "FAILED"
    assert "rejected by bob" in (final.state.message or "")
    assert not log.exists()
    [outcome] = audit(e2e.data_dir, kind="release.outcome", run_id=run_id)
    assert outcome["data"]["outcome"] == "rejected"


def test_failed_verify_rolls_back_in_reverse(
    e2e: E2EStack, ops_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    """A step whose verify fails: the applied steps roll back in reverse; run Failed."""
    url, _ = ops_endpoint
    repo, log = heritage(e2e, "ledger-verify", url, required=1, fail_verify="reindex")
    start_deployment("migration/migration", {"service": "ledger-verify", "trigger": "cli"})
    run_id = awaiting("ledger-verify")
    approve_in_ui(run_id, "alice", gate(e2e, run_id)["plan_digest"])
    final = wait_for(run_id, timeout=180)
    assert final.state is not None and final.state.type.value == "FAILED"
    assert log.read_text().splitlines()[-3:] == [
        "rollback reindex",
        "rollback migrate",
        "rollback backup",
    ]
    assert repo.git("tag") == ""
    [outcome] = audit(e2e.data_dir, kind="release.outcome", run_id=run_id)
    assert outcome["data"]["applied"] == ["backup", "migrate"]
    assert outcome["data"]["rolled_back"] == ["reindex", "migrate", "backup"]


def test_deadline_passes_rejected_by_timeout(
    e2e: E2EStack, ops_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    """Past the approval deadline, the sweeper ends the run rejected by timeout."""
    from datetime import datetime, timedelta

    from flows.migration import expire_overdue

    url, _ = ops_endpoint
    _, log = heritage(e2e, "ledger-late", url)
    start_deployment("migration/migration", {"service": "ledger-late", "trigger": "cli"})
    run_id = awaiting("ledger-late")
    deadline = datetime.fromisoformat(gate(e2e, run_id)["deadline"])
    assert run_id not in expire_overdue(deadline - timedelta(seconds=1))
    assert run_id in expire_overdue(deadline)
    final = wait_for(run_id)
    assert final.state is not None and final.state.type.value == "FAILED"
    assert "rejected by timeout" in (final.state.message or "")
    assert not log.exists()
    assert audit(e2e.data_dir, kind="approval.timeout", run_id=run_id)


def test_freeze_and_short_window_apply_nothing(
    e2e: E2EStack, ops_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    """A freeze over the window starts nothing; a window too short fails pre-flight."""
    url, _ = ops_endpoint
    _, frozen_log = heritage(e2e, "frozen-ledger", url)
    windows = e2e.config_dir / "windows.yaml"
    windows.write_text(
        windows.read_text() + "freezes:\n  - {name: e2e-freeze, start: '2020-01-01T00:00', "
        "end: '2100-01-01T00:00', timezone: UTC, services: [frozen-ledger]}\n"
    )
    wait_for(start_deployment("migration-window/migration-window", {"window": "always"}))
    [opened] = audit(e2e.data_dir, kind="window.opened", service="frozen-ledger")[-1:]
    assert "freeze 'e2e-freeze'" in opened["data"]["action"]
    assert active_runs("migration", "frozen-ledger") == []
    _, short_log = heritage(e2e, "ledger-short", url, window="never-fits", estimate="10m")
    run = wait_for(
        start_deployment("migration/migration", {"service": "ledger-short", "trigger": "cli"})
    )
    assert run.state is not None and run.state.type.value == "FAILED"
    assert "no window can fit this change" in (run.state.message or "")
    assert not frozen_log.exists() and not short_log.exists()


def test_emergency_change_outside_its_window(
    e2e: E2EStack,
    ops_endpoint: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An emergency change runs outside its window after one extra approval, marked as such."""
    url, _ = ops_endpoint
    _, log = heritage(e2e, "ledger-urgent", url, window="next-year", required=1)
    assert (
        main(["release", "ledger-urgent", "--emergency", "--reason", "card outage", "--json"]) == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["action"] == "emergency-migration"
    run_id = awaiting("ledger-urgent")
    assert gate(e2e, run_id)["required"] == 2 and gate(e2e, run_id)["emergency"] is True
    assert main(["approve", run_id, "--as", "alice"]) == 0
    wait_gate_again(e2e, "ledger-urgent", run_id, 1)
    assert main(["approve", run_id, "--as", "bob"]) == 0
    final = wait_for(run_id, timeout=180)
    assert final.state is not None and final.state.type.value == "COMPLETED", final.state
    assert "apply reindex" in log.read_text()
    [outcome] = audit(e2e.data_dir, kind="release.outcome", run_id=run_id)
    assert outcome["data"]["emergency"] is True
    assert all(
        d["data"]["emergency"] for d in audit(e2e.data_dir, kind="approval.decision", run_id=run_id)
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stack_restart_while_awaiting_approval(
    e2e: E2EStack, ops_endpoint: tuple[str, list[dict[str, Any]]], sig: int
) -> None:
    """The Prefect server and `dualop serve` stopped (SIGTERM, then separately SIGKILL)
    while a run waits for approval, then started again as `make up` would: the run still
    waits; one approval completes the release, each step applied exactly once."""
    url, _ = ops_endpoint
    name = f"ledger-restart-{'term' if sig == signal.SIGTERM else 'kill'}"
    repo, log = heritage(e2e, name, url, required=1)
    start_deployment("migration/migration", {"service": name, "trigger": "cli"})
    run_id = awaiting(name)
    digest = gate(e2e, run_id)["plan_digest"]

    e2e.wait_idle()  # nothing runs: the suspended run holds no process
    e2e.stop(sig)
    e2e.start()

    assert awaiting(name) == run_id
    assert gate(e2e, run_id)["plan_digest"] == digest
    assert main(["approve", run_id, "--as", "alice", "--comment", "after the restart"]) == 0
    final = wait_for(run_id, timeout=180)
    assert final.state is not None and final.state.type.value == "COMPLETED", final.state
    applied = [line for line in log.read_text().splitlines() if line.startswith("apply ")]
    assert applied == ["apply backup", "apply migrate", "apply reindex"]
    assert repo.git("tag").splitlines() == [f"{name}/v0.1.0"]
    [outcome] = audit(e2e.data_dir, kind="release.outcome", run_id=run_id)
    assert outcome["data"]["outcome"] == "released"
    assert main(["audit", "verify"]) == 0
