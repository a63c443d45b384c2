"""Migration steps: apply then verify in order; on failure, roll back in reverse."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualop.catalog import MigrationStep
from dualop.exceptions import CommandFailed
from dualop.migration import apply_steps, plan_digest, preflight_problems

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def step(name: str, log: Path, *, fail: str = "", estimate: str = "10m") -> MigrationStep:
    def argv(stage: str) -> list[str]:
        code = 1 if stage == fail else 0
        return [
            sys.executable,
            "-c",
            f"import sys; open({str(log)!r}, 'a').write('{stage} {name}\\n'); sys.exit({code})",
        ]

    return MigrationStep.model_validate(
        {
            "name": name,
            "apply": argv("apply"),
            "verify": argv("verify"),
            "rollback": argv("rollback"),
            "estimate": estimate,
        }
    )


def run(stage: str, s: MigrationStep, argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise CommandFailed(f"{stage} of {s.name}", argv=argv, returncode=proc.returncode)


class TestApplySteps:
    def test_all_steps_apply_and_verify_in_order(self, tmp_path: Path) -> None:
        """Each step's apply runs, then its verify, in catalog order."""
        log = tmp_path / "steps.log"
        steps = [step("one", log), step("two", log)]
        report = apply_steps(steps, run=run, clock=lambda: T0, closes_at=T0 + timedelta(hours=1))
        assert report.ok and report.applied == ["one", "two"]
        assert log.read_text().split("\n")[:-1] == [
            "apply one",
            "verify one",
            "apply two",
            "verify two",
        ]

    def test_failed_verify_rolls_back_in_reverse(self, tmp_path: Path) -> None:
        """A failing verify of the third step rolls back three, two, one, in that order."""
        log = tmp_path / "steps.log"
        steps = [
            step("one", log),
            step("two", log),
            step("three", log, fail="verify"),
            step("four", log),
        ]
        report = apply_steps(steps, run=run, clock=lambda: T0, closes_at=None)
        assert not report.ok
        assert report.failed_step == "three"
        assert report.applied == ["one", "two"]
        assert report.rolled_back == ["three", "two", "one"]
        lines = log.read_text().split("\n")[:-1]
        assert lines[-3:] == ["rollback three", "rollback two", "rollback one"]
        assert "apply four" not in lines

    def test_a_step_that_no_longer_fits_never_starts(self, tmp_path: Path) -> None:
        """When the next estimate passes the window's close, stop there and roll back."""
        log = tmp_path / "steps.log"
        steps = [step("one", log, estimate="20m"), step("two", log, estimate="20m")]
        clock = iter([T0, T0 + timedelta(minutes=25)])
        report = apply_steps(
            steps, run=run, clock=lambda: next(clock), closes_at=T0 + timedelta(minutes=40)
        )
        assert report.failed_step == "two"
        assert "window closes at" in (report.reason or "")
        assert report.rolled_back == ["one"]
        assert "apply two" not in log.read_text()

    def test_events_are_reported_for_the_audit_log(self, tmp_path: Path) -> None:
        """Every applied, failed and rolled-back step is reported as an event."""
        log = tmp_path / "steps.log"
        events: list[tuple[str, str]] = []
        apply_steps(
            [step("one", log), step("two", log, fail="apply")],
            run=run,
            clock=lambda: T0,
            closes_at=None,
            on_event=lambda kind, name, detail: events.append((kind, name)),
        )
        assert events == [
            ("step.applied", "one"),
            ("step.failed", "two"),
            ("step.rolled_back", "two"),
            ("step.rolled_back", "one"),
        ]


class TestPlanDigest:
    def test_binds_commit_and_steps(self, tmp_path: Path) -> None:
        """The digest changes when the commit or any step changes, and only then."""
        log = tmp_path / "x"
        steps = [step("one", log)]
        base = plan_digest("c" * 40, steps)
        assert plan_digest("c" * 40, [step("one", log)]) == base
        assert plan_digest("d" * 40, steps) != base
        assert plan_digest("c" * 40, [step("one", log, estimate="11m")]) != base


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, [], id="ready"),
        pytest.param({"window_open": False}, ["no release window is open"], id="closed"),
        pytest.param({"window_open": False, "emergency": True}, [], id="emergency-lane"),
        pytest.param({"frozen_by": "year-end"}, ["freeze 'year-end' is in force"], id="freeze"),
        pytest.param({"time_left": timedelta(minutes=5)}, ["the window has 5m left"], id="short"),
        pytest.param(
            {"unreachable_targets": ["json://x/"]}, ["ops squad target not reachable"], id="ops"
        ),
    ],
)
def test_preflight(kwargs: dict[str, object], expected: list[str], tmp_path: Path) -> None:
    """Pre-flight names every reason a change must not start."""
    from dualop.catalog import Service
    from dualop.migration import ChangeRecord

    steps = (step("one", tmp_path / "x"),)
    svc = Service.model_validate(
        {
            "name": "ledger-core",
            "repo": "/r",
            "owner": "o",
            "runtime": "cobol",
            "heritage": {
                "windows": ["nightly"],
                "approvals": {"required": 1, "approvers": ["alice"]},
                "steps": [s.model_dump() for s in steps],
                "ops_squad": {"name": "ops", "notify": ["json://127.0.0.1:9/"]},
            },
        }
    )
    record = ChangeRecord("ledger-core", "o", "c" * 40, None, "0.1.0", (), "", steps, "d", (), None)
    args: dict[str, object] = {
        "window_open": True,
        "frozen_by": None,
        "time_left": timedelta(hours=1),
        "emergency": False,
        "unreachable_targets": [],
        **kwargs,
    }
    problems = preflight_problems(service=svc, record=record, **args)  # type: ignore[arg-type]
    assert len(problems) == len(expected)
    for problem, prefix in zip(problems, expected, strict=True):
        assert problem.startswith(prefix)
