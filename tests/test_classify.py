"""The classifier: on real repositories with controlled history, and as a pure function."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import semver

from dualop.catalog import OperatingModel, Service
from dualop.classify import (
    Classification,
    HistoryMetrics,
    Level,
    classify,
    classify_service,
    measure,
    metrics_from,
)
from dualop.exceptions import InputError
from dualop.git import Commit, GitRepo, ReleaseTag
from dualop.settings import ClassifierSettings
from dualop.testing import RepoBuilder

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SETTINGS = ClassifierSettings()
AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov"]


def service(name: str, repo: Path | str = "/nowhere", **facts: Any) -> Service:
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


def run(
    svc: Service, tmp_path: Path, *, at: datetime = AT, settings: ClassifierSettings = SETTINGS
) -> Classification:
    repo = GitRepo.clone_or_fetch(svc.repo, tmp_path / "ws" / svc.name)
    return classify_service(svc, repo, at=at, settings=settings)


def has(verdict: Classification, *parts: str) -> bool:
    """Whether one reason contains all `parts`."""
    return any(all(p in r for p in parts) for r in verdict.reasons)


@pytest.fixture
def busy_quick(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> RepoBuilder:
    """Two commits a day by five authors for 85 days, a release within hours, every 3 days.

    Built once per session (under the test git identity), copied for each test."""
    template = tmp_path_factory.getbasetemp() / "busy-template"
    if not template.exists():
        repo = RepoBuilder.init(template.with_suffix(".partial"))
        start = AT - timedelta(days=85)
        for i in range(170):
            when = start + timedelta(hours=12 * i)
            repo.commit(f"fix: change {i}", when=when, author=AUTHORS[i % 5])
            if i % 6 == 5:
                repo.tag(f"busy/v1.0.{i // 6}", when=when + timedelta(hours=3))
        repo.path.rename(template)
    shutil.copytree(template, tmp_path / "busy")
    return RepoBuilder(tmp_path / "busy")


class TestVerdicts:
    def test_busy_repo_with_quick_releases_is_digital(
        self, tmp_path: Path, busy_quick: RepoBuilder
    ) -> None:
        """High demand, short lead time, frequent releases: digital."""
        verdict = run(service("busy", busy_quick.path), tmp_path)
        assert verdict.model is OperatingModel.DIGITAL
        assert not verdict.forced and not verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.HIGH
        assert verdict.cost_of_change.level is Level.LOW
        m = verdict.metrics
        assert m.cost_measured and m.demand_measured
        assert (m.commits, m.distinct_authors, m.releases) == (170, 5, 28)
        assert m.median_lead_time_days is not None and m.median_lead_time_days < 3
        assert m.median_release_interval_days == 3.0
        assert m.change_failure_rate == 0.0 and m.unreleased_commits == 2
        assert has(verdict, "median lead time", "within the 14-day threshold", "ship quickly")
        assert has(verdict, "a release every 3.0 days", "releases are frequent")

    def test_quiet_cobol_repo_with_slow_releases_is_heritage(self, tmp_path: Path) -> None:
        """A commit a week, releases two months apart, COBOL: heritage, not a candidate."""
        repo = RepoBuilder.init(tmp_path / "ledger")
        start = AT - timedelta(days=364)
        for i in range(53):
            when = start + timedelta(days=7 * i)
            repo.commit(f"ledger: CR-{i}", when=when, author=AUTHORS[i % 2])
            if i % 9 == 8:
                repo.tag(f"ledger/v3.{i}.0", when=when + timedelta(days=30))
        verdict = run(service("ledger", repo.path, runtime="COBOL (IBM Enterprise)"), tmp_path)
        assert verdict.model is OperatingModel.HERITAGE
        assert not verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.LOW
        assert verdict.cost_of_change.level is Level.HIGH
        m = verdict.metrics
        assert m.cost_measured and (m.commits, m.distinct_authors) == (13, 2)
        assert (m.median_lead_time_days, m.median_release_interval_days) == (44.0, 63.0)
        assert has(verdict, "median lead time 44.0 days", "above", "changes wait long to ship")
        assert has(verdict, "a release every 63.0 days", "above the 30-day", "releases are rare")
        assert has(verdict, "heritage runtime", "'cobol'")

    def test_busy_repo_whose_releases_lag_months_is_a_migration_candidate(
        self, tmp_path: Path
    ) -> None:
        """Busy, but each change waits months for a release: heritage + migration candidate."""
        repo = RepoBuilder.init(tmp_path / "lagging")
        start = AT - timedelta(days=130)
        for i in range(130):  # a commit a day; the look-back holds the last 90
            when = start + timedelta(days=i)
            repo.commit(f"fix: change {i}", when=when, author=AUTHORS[i % 5])
            if i in (10, 100):  # releases 90 days apart
                repo.tag(f"lagging/v2.{i}.0", when=when + timedelta(hours=1))
        verdict = run(service("lagging", repo.path), tmp_path)
        assert verdict.model is OperatingModel.HERITAGE
        assert verdict.migration_candidate
        assert verdict.demand_for_change.level is Level.HIGH
        m = verdict.metrics
        assert m.median_release_interval_days == 90.0
        assert m.median_lead_time_days is not None and m.median_lead_time_days > 14
        assert has(verdict, "median lead time", "above the 14-day threshold")
        assert has(verdict, "29 change(s) not released yet")
        assert has(verdict, "migration candidate", "7 commits a week by 5 author(s)")

    def test_a_forced_model_wins_and_says_so(self, tmp_path: Path, busy_quick: RepoBuilder) -> None:
        """operating_model: heritage on a digital-looking repo: heritage, forced, reasons say why."""
        repo = busy_quick
        svc = service("busy", repo.path, operating_model="heritage", reason="regulated payments")
        verdict = run(svc, tmp_path)
        assert verdict.model is OperatingModel.HERITAGE and verdict.forced
        assert verdict.measured_model is OperatingModel.DIGITAL
        assert verdict.metrics.median_lead_time_days is not None  # still measured, still shown
        assert has(verdict, "forced", "regulated payments", "would say digital")
        # busy and forced heritage: the heritage model cannot take that demand
        assert verdict.migration_candidate

    def test_no_tags_falls_back_to_declared_facts(self, tmp_path: Path) -> None:
        """Without release tags the cost is unmeasured, and the verdict says so."""
        repo = RepoBuilder.init(tmp_path / "untagged")
        for i in range(30):
            repo.commit(f"fix: {i}", when=AT - timedelta(days=30 - i), author=AUTHORS[i % 3])
        verdict = run(service("untagged", repo.path), tmp_path)
        m = verdict.metrics
        assert not m.cost_measured and m.demand_measured
        assert m.median_lead_time_days is None and m.median_release_interval_days is None
        assert m.change_failure_rate is None and m.median_unreleased_age_days is None
        assert verdict.model is OperatingModel.DIGITAL
        assert has(verdict, "too little release history", "declared facts only")
        assert has(verdict, "nothing declared raises the cost of change")
        cobol = run(service("untagged", repo.path, runtime="cobol"), tmp_path)
        assert cobol.model is OperatingModel.HERITAGE
        assert has(cobol, "too little release history") and has(cobol, "heritage runtime")

    def test_an_empty_look_back_says_demand_is_unmeasured(self, tmp_path: Path) -> None:
        """A repo quiet for the whole look-back: demand not measured, said in plain words."""
        repo = RepoBuilder.init(tmp_path / "dormant")
        repo.commit("fix: long ago", when=AT - timedelta(days=400))
        verdict = run(service("dormant", repo.path), tmp_path)
        assert not verdict.metrics.demand_measured
        assert verdict.demand_for_change == verdict.demand_for_change.model_copy(
            update={"score": 0.0, "level": Level.LOW}
        )
        assert has(verdict, "demand: too little history to measure: 0 commit(s)", "not measured")

    def test_the_verdict_is_reproducible_at_a_past_instant(
        self, tmp_path: Path, busy_quick: RepoBuilder
    ) -> None:
        """Commits and tags after `at` do not change a verdict taken at `at`."""
        repo = busy_quick
        first = run(service("busy", repo.path), tmp_path)
        repo.commit("fix: later", when=AT + timedelta(days=1))
        repo.tag("busy/v9.0.0", when=AT + timedelta(days=1))
        again = run(service("busy", repo.path), tmp_path)
        assert again == first

    def test_json_shape(self, tmp_path: Path, busy_quick: RepoBuilder) -> None:
        """to_json_dict carries the fields `dualop classify --json` promises."""
        verdict = run(service("busy", busy_quick.path), tmp_path).to_json_dict()
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
        assert verdict["model"] == "digital" and verdict["service"] == "busy"
        assert set(verdict["cost_of_change"]) == {"score", "level"}
        assert verdict["metrics"]["median_release_interval_days"] == 3.0
        assert all(isinstance(r, str) for r in verdict["reasons"])


SMALL = ClassifierSettings(lookback_days=30, min_commits=1, min_releases=1)
D0 = AT - timedelta(days=20)


class TestMeasure:
    def test_lead_time_follows_merges(self, tmp_path: Path) -> None:
        """A feature commit older than a release ships with the release that contains it."""
        repo = RepoBuilder.init(tmp_path / "merged")
        repo.commit("fix: c0", when=D0)
        repo.switch("feature", create=True)
        repo.commit("feat: f1", when=D0 + timedelta(days=1))  # lead: day 1 → day 6 = 5
        repo.switch("main")
        repo.commit("fix: c2", when=D0 + timedelta(days=2))  # lead 0
        repo.tag("v1.0.0", when=D0 + timedelta(days=2))  # c0: lead 2
        repo.merge("feature", when=D0 + timedelta(days=5))  # lead 1
        repo.tag("v1.1.0", when=D0 + timedelta(days=6))
        m = run(service("merged", repo.path), tmp_path, settings=SMALL).metrics
        assert (m.commits, m.unreleased_commits) == (4, 0)
        assert m.median_lead_time_days == 1.5  # median of 0, 1, 2, 5

    def test_tags_off_the_release_branch_ship_its_commits(self, tmp_path: Path) -> None:
        """A release tagged on a maintenance branch ships the branch commits it contains."""
        repo = RepoBuilder.init(tmp_path / "maint")
        repo.commit("fix: c0", when=D0)
        repo.tag("v1.0.0", when=D0)
        repo.commit("fix: c1", when=D0 + timedelta(days=1))  # shipped by v1.0.1: lead 2
        repo.switch("maint", create=True)
        repo.commit("fix: on maint", when=D0 + timedelta(days=2))
        repo.tag("v1.0.1", when=D0 + timedelta(days=3))
        repo.switch("main")
        repo.commit("fix: c2", when=D0 + timedelta(days=4))  # unreleased, 16 days old at AT
        m = run(service("maint", repo.path), tmp_path, settings=SMALL).metrics
        assert (m.commits, m.releases, m.unreleased_commits) == (3, 2, 1)
        assert m.median_lead_time_days == 1.0  # median of 0 and 2
        assert m.median_unreleased_age_days == 16.0

    def test_change_failure_rate(self, tmp_path: Path) -> None:
        """A release whose next release ships a revert or a hotfix counts as failed."""
        repo = RepoBuilder.init(tmp_path / "cfr")
        bad = repo.commit("feat: risky", when=D0)
        repo.tag("v1.0.0", when=D0)  # failed: v1.0.1 reverts
        repo.revert(bad, when=D0 + timedelta(days=1))
        repo.tag("v1.0.1", when=D0 + timedelta(days=1))  # fine: v1.1.0 is a feature
        repo.commit("feat: next", when=D0 + timedelta(days=2))
        repo.tag("v1.1.0", when=D0 + timedelta(days=2))  # failed: v1.1.1 is a hotfix
        repo.commit("fix: hotfix for login", when=D0 + timedelta(days=3))
        repo.tag("v1.1.1", when=D0 + timedelta(days=3))
        m = run(service("cfr", repo.path), tmp_path, settings=SMALL).metrics
        assert (m.rated_releases, m.failed_releases, m.change_failure_rate) == (3, 2, 0.67)

    def test_naive_instant_is_refused(self, tmp_path: Path) -> None:
        """`at` without a timezone is an input error with the fix."""
        repo = GitRepo.open(RepoBuilder.init(tmp_path / "any").path)
        with pytest.raises(InputError, match="has no timezone; give one with an offset"):
            measure(repo, service("busy"), at=AT.replace(tzinfo=None), settings=SETTINGS)


def commit(days_ago: float, author: str = "a", parent: str | None = None) -> Commit:
    when = AT - timedelta(days=days_ago)
    sha = f"{days_ago:040.3f}".replace(".", "0")
    return Commit(
        sha, author, f"{author}@x", when, when, "fix: x", parents=(parent,) if parent else ()
    )


class TestMetricsFrom:
    @pytest.mark.parametrize(
        ("older", "recent", "trend", "ratio"),
        [
            pytest.param(10, 10, "steady", 1.0, id="steady"),
            pytest.param(10, 20, "rising", 2.0, id="rising"),
            pytest.param(20, 10, "falling", 0.5, id="falling"),
            pytest.param(0, 12, "rising", None, id="all-recent"),
            pytest.param(0, 0, "unknown", None, id="none"),
        ],
    )
    def test_trend(self, older: int, recent: int, trend: str, ratio: float | None) -> None:
        """Commits in the recent half of the look-back against the older half."""
        commits = [commit(80 - i * 0.1) for i in range(older)]
        commits += [commit(10 - i * 0.1) for i in range(recent)]
        since = AT - timedelta(days=90)
        m = metrics_from(commits, [], since=since, at=AT, settings=SETTINGS)
        assert (m.trend, m.trend_ratio) == (trend, ratio)
        assert m.commits_per_week == round((older + recent) / (90 / 7), 2)

    def test_pure_and_deterministic(self) -> None:
        """Same inputs, same figures; tags count by date, the one before the look-back too."""
        commits = [commit(d) for d in range(60, 0, -2)]
        tags = [
            ReleaseTag("v1.0.0", semver.Version(1, 0, 0), "x" * 40, AT - timedelta(days=100)),
            ReleaseTag("v1.1.0", semver.Version(1, 1, 0), "y" * 40, AT - timedelta(days=40)),
        ]
        args: dict[str, Any] = {"since": AT - timedelta(days=90), "at": AT, "settings": SETTINGS}
        m = metrics_from(commits, tags, **args)
        assert m == metrics_from(commits, tags, **args)
        assert (m.releases, m.median_release_interval_days, m.days_since_last_release) == (
            1,
            60.0,
            40.0,
        )


def metrics(**overrides: Any) -> HistoryMetrics:
    """Figures of a busy, quickly releasing service; override what a case is about."""
    data: dict[str, Any] = {
        "lookback_days": 90,
        "since": AT - timedelta(days=90),
        "until": AT,
        "commits": 130,
        "commits_per_week": 10.11,
        "distinct_authors": 6,
        "trend_ratio": 1.0,
        "trend": "steady",
        "releases": 30,
        "median_lead_time_days": 1.0,
        "unreleased_commits": 0,
        "median_unreleased_age_days": None,
        "median_release_interval_days": 3.0,
        "days_since_last_release": 1.0,
        "rated_releases": 29,
        "failed_releases": 0,
        "change_failure_rate": 0.0,
        "demand_measured": True,
        "cost_measured": True,
    }
    data.update(overrides)
    return HistoryMetrics.model_validate(data)


class TestClassify:
    @pytest.mark.parametrize(
        ("figures", "facts", "model", "reason"),
        [
            pytest.param({}, {}, "digital", "changes ship quickly", id="all-quick"),
            pytest.param(
                {"median_lead_time_days": 41.0},
                {},
                "heritage",
                "median lead time 41.0 days (commit to release tag, over 130 shipped commits) "
                "is above the 14-day threshold: changes wait long to ship",
                id="slow-lead-time",
            ),
            pytest.param(
                {"median_release_interval_days": 61.0},
                {},
                "heritage",
                "a release every 61.0 days",
                id="rare-releases",
            ),
            pytest.param(
                {"change_failure_rate": 0.6, "failed_releases": 18},
                {},
                "heritage",
                "18 of 29 release(s) were followed by a revert or hotfix (change failure rate 60%)",
                id="failing-releases",
            ),
            pytest.param(
                {"unreleased_commits": 40, "median_unreleased_age_days": 35.0},
                {},
                "heritage",
                "40 change(s) not released yet have waited a median 35.0 days so far, above the "
                "14-day threshold: counted as lead time",
                id="stalled-releases",
            ),
            pytest.param(
                {}, {"runtime": "IBM z/OS Enterprise COBOL"}, "heritage", "'cobol'", id="cobol"
            ),
            pytest.param(
                {}, {"tests_automated": False}, "digital", "tests are not automated", id="no-tests"
            ),
            pytest.param(
                {},
                {"tests_automated": False, "deploys_automated": False},
                "heritage",
                "deploys need manual work",
                id="no-tests-manual-deploys",
            ),
        ],
    )
    def test_model_from_figures_and_facts(
        self, figures: dict[str, Any], facts: dict[str, Any], model: str, reason: str
    ) -> None:
        """Each strong cost signal alone makes a service heritage, and the reason says so."""
        verdict = classify(service("svc", **facts), metrics(**figures), SETTINGS, at=AT)
        assert verdict.model.value == model
        assert has(verdict, reason), verdict.reasons
        # busy and heritage is a migration candidate; busy and digital is not
        assert verdict.migration_candidate is (model == "heritage")

    def test_quiet_heritage_is_not_a_migration_candidate(self) -> None:
        """Low demand on the heritage model is what it is for."""
        quiet = metrics(commits_per_week=0.5, distinct_authors=1, median_lead_time_days=60.0)
        verdict = classify(service("svc"), quiet, SETTINGS, at=AT)
        assert verdict.model is OperatingModel.HERITAGE
        assert verdict.demand_for_change.level is Level.LOW and not verdict.migration_candidate

    @pytest.mark.parametrize(
        ("forced", "measured", "says"),
        [
            pytest.param("digital", {"median_lead_time_days": 90.0}, "would say heritage", id="d"),
            pytest.param("heritage", {"median_lead_time_days": 90.0}, "agrees", id="agrees"),
        ],
    )
    def test_forced_model(self, forced: str, measured: dict[str, Any], says: str) -> None:
        """A forced model wins; the measured verdict is kept and said."""
        svc = service("svc", operating_model=forced, reason="contract says so")
        verdict = classify(svc, metrics(**measured), SETTINGS, at=AT)
        assert verdict.model.value == forced and verdict.forced
        assert verdict.measured_model is OperatingModel.HERITAGE
        assert has(verdict, f"forced: operating_model is set to {forced}", "contract says so", says)

    def test_thresholds_come_from_settings(self) -> None:
        """A stricter lead-time threshold turns the same figures heritage."""
        figures = metrics(median_lead_time_days=5.0)
        assert classify(service("svc"), figures, SETTINGS, at=AT).model is OperatingModel.DIGITAL
        strict = ClassifierSettings(cost_high_lead_time_days=2.0)
        verdict = classify(service("svc"), figures, strict, at=AT)
        assert verdict.model is OperatingModel.HERITAGE
        assert has(verdict, "above the 2-day threshold")

    def test_same_inputs_same_answer(self) -> None:
        """classify is deterministic."""
        args = (service("svc", runtime="cobol"), metrics(), SETTINGS)
        assert classify(*args, at=AT) == classify(*args, at=AT)

    def test_naive_instant_is_refused(self) -> None:
        """`at` without a timezone is an input error."""
        with pytest.raises(InputError, match="no timezone"):
            classify(service("svc"), metrics(), SETTINGS, at=AT.replace(tzinfo=None))
