"""The classifier: which operating model a service's releases take, and why.

Two scores in [0, 1], each with a level (`high` at or above its threshold in settings):

**Demand for change**, measured on the release branch over the look-back period
(`classifier.lookback_days`, ending at `at`): commits per week, distinct authors, and
the trend (commits per week in the recent half against the older half).

    demand = 0.6·x(commits/week) + 0.3·x(authors) + 0.1·trend     x(v) = min(1, v / (2·threshold))

so each figure at its threshold contributes half its weight; trend is 1 rising,
0.5 steady, 0 falling.

**Cost of change**, from what the history shows and what the catalog declares. Each
signal s in [0, 1] has a weight w, and the score is a noisy-OR, 1 - prod(1 - w*s), so
one strong signal is enough and several weak ones add up:

- median lead time, commit to the release tag that ships it (changes not shipped yet
  count with their age so far): s = x(days), w = 0.6
- median interval between releases: s = x(days), w = 0.5
- change failure rate, releases whose successor ships a revert or a hotfix:
  s = x(rate), w = 0.5
- a declared heritage runtime (`classifier.heritage_runtimes`, e.g. COBOL): w = 0.6
- `tests_automated: false`: w = 0.3; `deploys_automated: false`: w = 0.3

The model is **heritage** when cost of change is high, else **digital**. Heritage under
high demand is a **migration candidate**: it cannot take that demand on the heritage
model and needs a migration pathway. A forced `operating_model` wins and says so (the
measured verdict is still reported). Too little history (fewer than
`classifier.min_commits` commits, or fewer than `classifier.min_releases` releases)
is said plainly and that part falls back to the declared facts: an unmeasured figure
is never presented as a measurement.

`classify` is pure (same inputs → same answer); `measure` reads git, in one `git log`
and one `git for-each-ref` call.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dualop.catalog import OperatingModel, Service
from dualop.git import Commit, GitRepo, ReleaseTag
from dualop.settings import ClassifierSettings

__all__ = [
    "Classification",
    "HistoryMetrics",
    "Level",
    "Score",
    "classify",
    "classify_service",
    "measure",
]

DAY = 86400.0


class Level(StrEnum):
    LOW = "low"
    HIGH = "high"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Score(_Frozen):
    score: float
    level: Level


class HistoryMetrics(_Frozen):
    """What the history shows; None where there was too little to measure."""

    lookback_days: int
    since: datetime
    until: datetime
    commits: int
    commits_per_week: float
    distinct_authors: int
    trend_ratio: float | None
    trend: Literal["rising", "steady", "falling", "unknown"]
    releases: int
    median_lead_time_days: float | None
    median_release_interval_days: float | None
    days_since_last_release: float | None
    change_failure_rate: float | None
    unreleased_commits: int
    demand_measured: bool
    cost_measured: bool


class Classification(_Frozen):
    service: str
    at: datetime
    model: OperatingModel
    forced: bool
    measured_model: OperatingModel
    migration_candidate: bool
    cost_of_change: Score
    demand_for_change: Score
    metrics: HistoryMetrics
    reasons: list[str]

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- measuring ----------------------------------------------------------------------------


def is_fix_signal(commit: Commit) -> bool:
    """A revert or a hotfix: evidence that the release before it failed."""
    subject = commit.subject.lower()
    return commit.subject.startswith('Revert "') or "hotfix" in subject or "hot-fix" in subject


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def measure(
    repo: GitRepo, service: Service, *, at: datetime, settings: ClassifierSettings
) -> HistoryMetrics:
    """Measure the release branch's history over the look-back period ending at `at`."""
    since = at - timedelta(days=settings.lookback_days)
    commits = repo.history(service.branch, since=since, until=at)  # newest first
    tags = [t for t in repo.release_tags(service.name, service.tag_pattern) if t.tagged_at <= at]
    return _metrics(commits, tags, since=since, at=at, settings=settings)


def _metrics(
    commits: list[Commit],
    tags: list[ReleaseTag],
    *,
    since: datetime,
    at: datetime,
    settings: ClassifierSettings,
) -> HistoryMetrics:
    weeks = settings.lookback_days / 7
    authors = {c.author_email.lower() or c.author_name for c in commits}
    half = since + (at - since) / 2
    older = sum(1 for c in commits if c.committed_at < half)
    recent = len(commits) - older
    trend_ratio = round(recent / older, 2) if older else None
    trend: Literal["rising", "steady", "falling", "unknown"] = "unknown"
    if trend_ratio is not None:
        trend = "rising" if trend_ratio > 1.25 else "falling" if trend_ratio < 0.8 else "steady"
    elif recent:
        trend = "rising"

    # Releases: those tagged in the look-back, plus the one just before it (for intervals).
    by_date = sorted(tags, key=lambda t: t.tagged_at)
    before = [t for t in by_date if t.tagged_at < since]
    in_window = [t for t in by_date if t.tagged_at >= since]
    series = before[-1:] + in_window
    intervals = [
        (b.tagged_at - a.tagged_at).total_seconds() / DAY for a, b in itertools.pairwise(series)
    ]

    # Lead time: walk the branch newest → oldest; a commit ships with the nearest release
    # tag at or after it (first-parent history). Unshipped commits count with their age.
    shipping_by_sha = {t.sha: t for t in by_date}
    lead_days: list[float] = []
    unreleased = 0
    shipped_by: ReleaseTag | None = None
    releases_of: dict[str, list[Commit]] = {}
    for c in commits:
        shipped_by = shipping_by_sha.get(c.sha, shipped_by)
        if shipped_by is None:
            unreleased += 1
            lead_days.append((at - c.committed_at).total_seconds() / DAY)
        else:
            lead_days.append(
                max(0.0, (shipped_by.tagged_at - c.committed_at).total_seconds() / DAY)
            )
            releases_of.setdefault(shipped_by.name, []).append(c)

    # Change failure rate: a release whose successor ships a revert or a hotfix.
    failures = 0
    for _, later in itertools.pairwise(series):
        if any(is_fix_signal(c) for c in releases_of.get(later.name, [])):
            failures += 1
    cost_measured = len(series) >= settings.min_releases and len(commits) >= settings.min_commits
    rated = len(series) - 1
    return HistoryMetrics(
        lookback_days=settings.lookback_days,
        since=since,
        until=at,
        commits=len(commits),
        commits_per_week=round(len(commits) / weeks, 2),
        distinct_authors=len(authors),
        trend_ratio=trend_ratio,
        trend=trend,
        releases=len(in_window),
        median_lead_time_days=_median(lead_days) if cost_measured else None,
        median_release_interval_days=_median(intervals) if cost_measured else None,
        days_since_last_release=(
            round((at - by_date[-1].tagged_at).total_seconds() / DAY, 2) if by_date else None
        ),
        change_failure_rate=round(failures / rated, 2) if cost_measured and rated else None,
        unreleased_commits=unreleased,
        demand_measured=len(commits) >= settings.min_commits,
        cost_measured=cost_measured,
    )


# --- classifying --------------------------------------------------------------------------


def _x(value: float, threshold: float) -> float:
    return min(1.0, value / (2 * threshold))


def _level(score: float, threshold: float) -> Level:
    return Level.HIGH if score >= threshold else Level.LOW


def classify(
    service: Service, metrics: HistoryMetrics, settings: ClassifierSettings, *, at: datetime
) -> Classification:
    """The verdict and its reasons, from the metrics and the declared facts (pure)."""
    reasons: list[str] = []
    m, s = metrics, settings

    # Demand for change.
    if m.demand_measured:
        trend_value = {"rising": 1.0, "steady": 0.5, "falling": 0.0, "unknown": 0.5}[m.trend]
        demand = (
            0.6 * _x(m.commits_per_week, s.demand_high_commits_per_week)
            + 0.3 * _x(m.distinct_authors, s.demand_high_authors)
            + 0.1 * trend_value
        )
        reasons.append(
            f"demand: {m.commits} commits in {m.lookback_days} days ({m.commits_per_week} per "
            f"week; high from {s.demand_high_commits_per_week}) by {m.distinct_authors} "
            f"author(s) (high from {s.demand_high_authors}), trend {m.trend}"
            + (f" (recent/older half = {m.trend_ratio})" if m.trend_ratio is not None else "")
        )
    else:
        demand = 0.0
        reasons.append(
            f"demand: too little history to measure ({m.commits} commit(s) in {m.lookback_days} "
            f"days, fewer than {s.min_commits}); treated as low, not measured"
        )

    # Cost of change: measured signals, then declared facts.
    signals: list[tuple[float, float]] = []
    if m.cost_measured:
        lead = m.median_lead_time_days or 0.0
        interval = m.median_release_interval_days
        cfr = m.change_failure_rate or 0.0
        signals.append((0.6, _x(lead, s.cost_high_lead_time_days)))
        above = "above" if lead > s.cost_high_lead_time_days else "within"
        reasons.append(
            f"cost: median lead time {lead:.1f} days from commit to the release that ships it "
            f"is {above} the {s.cost_high_lead_time_days:g}-day threshold"
            + (
                f"; {m.unreleased_commits} change(s) not released yet"
                if m.unreleased_commits
                else ""
            )
        )
        if interval is not None:
            signals.append((0.5, _x(interval, s.cost_high_release_interval_days)))
            reasons.append(
                f"cost: a release every {interval:.1f} days (median over {m.releases} "
                f"release(s) in the look-back; high from {s.cost_high_release_interval_days:g})"
            )
        signals.append((0.5, _x(cfr, s.cost_high_failure_rate)))
        reasons.append(
            f"cost: change failure rate {cfr:.0%} (releases followed by a revert or hotfix; "
            f"high from {s.cost_high_failure_rate:.0%})"
        )
    else:
        reasons.append(
            f"cost: too little release history to measure ({m.releases} release tag(s) and "
            f"{m.commits} commit(s) in {m.lookback_days} days; needs {s.min_releases} releases "
            f"and {s.min_commits} commits): judged on the declared facts only"
        )
    runtime = service.runtime.lower()
    heritage_runtime = next((r for r in s.heritage_runtimes if r.lower() in runtime), None)
    if heritage_runtime:
        signals.append((0.6, 1.0))
        reasons.append(
            f"declared: runtime {service.runtime!r} is a heritage runtime ({heritage_runtime})"
        )
    if not service.tests_automated:
        signals.append((0.3, 1.0))
        reasons.append("declared: tests are not automated (tests_automated: false)")
    if not service.deploys_automated:
        signals.append((0.3, 1.0))
        reasons.append("declared: deploys need manual work (deploys_automated: false)")
    if not (heritage_runtime or not service.tests_automated or not service.deploys_automated):
        reasons.append(
            f"declared: runtime {service.runtime!r}, automated tests and deploys: nothing "
            "declared raises the cost of change"
        )
    keep = 1.0
    for weight, signal in signals:
        keep *= 1 - weight * signal
    cost = 1 - keep

    cost_score = Score(score=round(cost, 3), level=_level(cost, s.cost_high_score))
    demand_score = Score(score=round(demand, 3), level=_level(demand, s.demand_high_score))
    measured_model = (
        OperatingModel.HERITAGE if cost_score.level is Level.HIGH else OperatingModel.DIGITAL
    )
    reasons.append(
        f"verdict: cost of change {cost_score.level} ({cost_score.score:.2f}) → "
        f"{measured_model.value}"
    )
    forced = service.forced_model
    model = forced or measured_model
    if forced is not None:
        reasons.append(
            f"forced: operating_model is set to {forced.value} in the catalog ({service.reason}); "
            + (
                "the measurement agrees"
                if forced is measured_model
                else f"the measurement alone would say {measured_model.value}"
            )
        )
    candidate = model is OperatingModel.HERITAGE and demand_score.level is Level.HIGH
    if candidate:
        reasons.append(
            "migration candidate: a heritage service under high demand for change; the "
            "heritage model cannot take that demand: plan a migration pathway"
        )
    return Classification(
        service=service.name,
        at=at,
        model=model,
        forced=forced is not None,
        measured_model=measured_model,
        migration_candidate=candidate,
        cost_of_change=cost_score,
        demand_for_change=demand_score,
        metrics=metrics,
        reasons=reasons,
    )


def classify_service(
    service: Service, repo: GitRepo, *, at: datetime, settings: ClassifierSettings
) -> Classification:
    return classify(service, measure(repo, service, at=at, settings=settings), settings, at=at)
