"""The classifier on real repositories with controlled history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dualop.catalog import OperatingModel, Service
from dualop.classify import Level, classify_service
from dualop.git import GitRepo
from dualop.settings import ClassifierSettings
from dualop.testing import RepoBuilder

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SETTINGS = ClassifierSettings()
AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov"]


def service(name: str, repo: Path, **facts: Any) -> Service:
    data: dict[str, Any] = {
        "name": name,
        "repo": str(repo),
        "owner": "team",
        "runtime": "python3.12",
        "operating_model": "auto",
        "heritage": {
            "windows": ["nightly"],
            "approvals": {"required": 1, "approvers": ["alice"]},
            "ops_squad": {"name": "ops", "notify": ["json://127.0.0.1:9/"]},
        },
    }
    data.update(facts)
    return Service.model_validate(data)


def run(svc: Service, tmp_path: Path) -> Any:
    repo = GitRepo.clone_or_fetch(svc.repo, tmp_path / "ws" / svc.name)
    return classify_service(svc, repo, at=AT, settings=SETTINGS)


def busy_quick(tmp_path: Path) -> RepoBuilder:
    """Two commits a day by five authors for 85 days, a release within hours, every 3 days."""
    repo = RepoBuilder.init(tmp_path / "busy")
    start = AT - timedelta(days=85)
    for i in range(170):
        when = start + timedelta(hours=12 * i)
        repo.commit(f"fix: change {i}", when=when, author=AUTHORS[i % 5])
        if i % 6 == 5:
            repo.tag(f"busy/v1.0.{i // 6}", when=when + timedelta(hours=3))
    return repo


class TestVerdicts:
    def test_busy_repo_with_quick_releases_is_digital(self, tmp_path: Path) -> None:
        """High demand, short lead time, frequent releases: digital."""
        repo = busy_quick(tmp_path)
        verdict = run(service("busy", repo.path), tmp_path)
        assert verdict.model is OperatingModel.DIGITAL
        assert not verdict.forced and not verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.HIGH
        assert verdict.cost_of_change.level is Level.LOW
        m = verdict.metrics
        assert m.cost_measured and m.demand_measured
        assert m.distinct_authors == 5
        assert m.median_lead_time_days is not None and m.median_lead_time_days < 3
        assert m.median_release_interval_days == 3.0
        assert any("median lead time" in r and "within" in r for r in verdict.reasons)

    def test_quiet_cobol_repo_with_slow_releases_is_heritage(self, tmp_path: Path) -> None:
        """Low demand, releases months apart, COBOL, manual tests: heritage, not a candidate."""
        repo = RepoBuilder.init(tmp_path / "ledger")
        start = AT - timedelta(days=400)
        for i in range(14):
            when = start + timedelta(days=28 * i)
            repo.commit(f"ledger: CR-{i}", when=when, author=AUTHORS[i % 2])
            if i % 4 == 3:
                repo.tag(f"ledger/v3.{i}.0", when=when + timedelta(days=40))
        svc = service("ledger", repo.path, runtime="COBOL (IBM Enterprise)", tests_automated=False)
        verdict = run(svc, tmp_path)
        assert verdict.model is OperatingModel.HERITAGE
        assert not verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.LOW
        assert any("heritage runtime" in r for r in verdict.reasons)
        assert any("tests are not automated" in r for r in verdict.reasons)

    def test_busy_repo_whose_releases_lag_months_is_a_migration_candidate(
        self, tmp_path: Path
    ) -> None:
        """Busy, but each change waits months for a release: heritage + migration candidate."""
        repo = RepoBuilder.init(tmp_path / "lagging")
        start = AT - timedelta(days=200)
        for i in range(200):
            when = start + timedelta(days=i)
            repo.commit(f"fix: change {i}", when=when, author=AUTHORS[i % 5])
            if i in (50, 170):
                repo.tag(f"lagging/v2.{i}.0", when=when + timedelta(hours=1))
        verdict = run(service("lagging", repo.path), tmp_path)
        assert verdict.model is OperatingModel.HERITAGE
        assert verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.HIGH
        assert verdict.metrics.median_release_interval_days == 120.0
        assert any("above the 14-day threshold" in r for r in verdict.reasons)
        assert any(r.startswith("migration candidate") for r in verdict.reasons)

    def test_a_forced_model_wins_and_says_so(self, tmp_path: Path) -> None:
        """operating_model: heritage on a digital-looking repo: heritage, forced, reasons say why."""
        repo = busy_quick(tmp_path)
        svc = service("busy", repo.path, operating_model="heritage", reason="regulated payments")
        verdict = run(svc, tmp_path)
        assert verdict.model is OperatingModel.HERITAGE and verdict.forced
        assert verdict.measured_model is OperatingModel.DIGITAL
        assert any(
            "forced" in r and "regulated payments" in r and "would say digital" in r
            for r in verdict.reasons
        )

    def test_no_tags_falls_back_to_declared_facts(self, tmp_path: Path) -> None:
        """Without release tags the cost is unmeasured, and the verdict says so."""
        repo = RepoBuilder.init(tmp_path / "untagged")
        for i in range(30):
            repo.commit(f"fix: {i}", when=AT - timedelta(days=30 - i), author=AUTHORS[i % 3])
        verdict = run(service("untagged", repo.path), tmp_path)
        assert not verdict.metrics.cost_measured
        assert verdict.metrics.median_lead_time_days is None
        assert verdict.model is OperatingModel.DIGITAL
        assert any(
            "too little release history" in r and "declared facts only" in r
            for r in verdict.reasons
        )
        cobol = run(service("untagged", repo.path, runtime="cobol"), tmp_path)
        assert cobol.model is OperatingModel.HERITAGE

    def test_the_verdict_is_reproducible_at_a_past_instant(self, tmp_path: Path) -> None:
        """Commits and tags after `at` do not change a verdict taken at `at`."""
        repo = busy_quick(tmp_path)
        first = run(service("busy", repo.path), tmp_path)
        repo.commit("fix: later", when=AT + timedelta(days=1))
        repo.tag("busy/v9.0.0", when=AT + timedelta(days=1))
        again = run(service("busy", repo.path), tmp_path)
        assert again == first

    def test_json_shape(self, tmp_path: Path) -> None:
        """to_json_dict carries the fields `dualop classify --json` promises."""
        verdict = run(service("busy", busy_quick(tmp_path).path), tmp_path).to_json_dict()
        assert {
            "service",
            "model",
            "forced",
            "migration_candidate",
            "cost_of_change",
            "demand_for_change",
            "metrics",
            "reasons",
        } <= set(verdict)
        assert set(verdict["cost_of_change"]) == {"score", "level"}
