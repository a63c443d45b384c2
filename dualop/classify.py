"""The classifier: which operating model a service's releases take, and why.

`measure` reads the release branch's history over the look-back period
(`classifier.lookback_days`, ending at `at`; commits and tags after `at` are ignored,
so a verdict can be reproduced later). `classify` turns the figures and the catalog's
declared facts into two scores in [0, 1], each with a level (`high` at or above its
threshold in settings), a model, and reasons in plain words. `classify` is pure: same
inputs, same answer.

**Demand for change**: commits per week, distinct authors, and the trend (commits in
the recent half of the look-back against the older half: rising above 1.25, falling
below 0.8, else steady).

    demand = 0.6·x(commits/week) + 0.3·x(authors) + 0.1·trend     x(v) = min(1, v / (2·threshold))

so each figure at its threshold contributes half its weight; trend counts 1 rising,
0.5 steady, 0 falling.

**Cost of change**: each signal s in [0, 1] has a weight w; the score is a noisy-OR,
1 - prod(1 - w·s), so one strong signal is enough and several weak ones add up:

- lead time, w = 0.6: the median time from a commit to the release tag that ships it
  (the earliest release tag, by tag date, whose commit contains it), over the commits
  of the look-back that shipped. Changes not released yet are not lead times, but
  their median age so far is a lower bound on theirs: the signal takes the larger of
  the two, so a service that stopped releasing does not look fast;
- release interval, w = 0.5: the median interval between consecutive releases tagged
  in the look-back (and the last one before it);
- change failure rate, w = 0.5: the share of releases whose next release ships a
  revert (a subject starting `Revert "`) or a hotfix (a subject, such as a merge of a
  `hotfix/...` branch, or a release tag name, containing `hotfix` or `hot-fix`);
- declared facts: a runtime listed in `classifier.heritage_runtimes` (case-insensitive
  substring, e.g. COBOL) w = 0.6; `tests_automated: false` w = 0.3;
  `deploys_automated: false` w = 0.3.

The model is **heritage** when cost of change is high, else **digital**. Heritage under
high demand is a **migration candidate**: it cannot take that demand on the heritage
model and needs a migration pathway. A forced `operating_model` wins and says so; the
measured verdict is still reported (`measured_model`).

**Too little history**: fewer than `classifier.min_commits` commits in the look-back
leaves demand unmeasured (treated as low, and said so); fewer than that, or fewer than
`classifier.min_releases` release tags (those in the look-back plus the last one before
it), leaves the measured cost signals out: the verdict then rests on the declared facts
only, says so, and the unmeasured figures are `None`, never a guess.

`measure` reads git in one `git log` and one `git for-each-ref` call (plus one more
`git log` only when release tags sit on commits off the release branch).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dualop.catalog import OperatingModel, Service
from dualop.exceptions import InputError
from dualop.git import Commit, GitRepo, ReleaseTag
from dualop.settings import ClassifierSettings

__all__ = [
    "Classification",
    "HistoryMetrics",
    "Level",
    "Score",
    "classify",
    "classify_service",
    "is_fix_signal",
    "measure",
    "metrics_from",
]

DAY = 86400.0
Trend = Literal["rising", "steady", "falling", "unknown"]


class Level(StrEnum):
    LOW = "low"
    HIGH = "high"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Score(_Frozen):
    score: float = Field(ge=0, le=1)
    level: Level


class HistoryMetrics(_Frozen):
    """What the history shows over the look-back; None where there was too little."""

    lookback_days: int
    since: datetime = Field(description="start of the look-back period")
    until: datetime = Field(description="end of the look-back period (the verdict's `at`)")
    commits: int = Field(description="commits on the release branch in the look-back")
    commits_per_week: float
    distinct_authors: int
    trend_ratio: float | None = Field(description="commits in the recent half / older half")
    trend: Trend
    releases: int = Field(description="release tags dated in the look-back")
    median_lead_time_days: float | None = Field(
        description="commit to the release tag that ships it, over the commits that shipped"
    )
    unreleased_commits: int = Field(description="commits of the look-back in no release yet")
    median_unreleased_age_days: float | None = Field(
        description="how long the unreleased commits have waited so far (median)"
    )
    median_release_interval_days: float | None
    days_since_last_release: float | None
    rated_releases: int = Field(description="releases followed by another (so they can be rated)")
    failed_releases: int = Field(description="of those, followed by a revert or hotfix")
    change_failure_rate: float | None
    demand_measured: bool
    cost_measured: bool


class Classification(_Frozen):
    service: str
    at: datetime
    model: OperatingModel
    forced: bool
    measured_model: OperatingModel = Field(description="the verdict without a forced model")
    migration_candidate: bool
    cost_of_change: Score
    demand_for_change: Score
    metrics: HistoryMetrics
    reasons: list[str]

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready: service, model, forced, migration_candidate, cost_of_change,
        demand_for_change ({score, level}), metrics, reasons, at, measured_model."""
        return self.model_dump(mode="json")


# --- measuring ----------------------------------------------------------------------------


def is_fix_signal(commit: Commit) -> bool:
    """A revert or a hotfix: evidence that the release before it failed."""
    subject = commit.subject.lower()
    return commit.subject.startswith('Revert "') or "hotfix" in subject or "hot-fix" in subject


def _is_hotfix_tag(tag: ReleaseTag) -> bool:
    return "hotfix" in tag.name.lower() or "hot-fix" in tag.name.lower()


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / DAY


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InputError(
            f"the classification instant {at.isoformat()} has no timezone; "
            "give one with an offset, e.g. 2026-11-01T12:00:00+00:00"
        )


def measure(
    repo: GitRepo, service: Service, *, at: datetime, settings: ClassifierSettings
) -> HistoryMetrics:
    """Measure the release branch's history over the look-back period ending at `at`."""
    _require_aware(at)
    since = at - timedelta(days=settings.lookback_days)
    commits = repo.history(service.branch, since=since, until=at)  # newest first
    tags = [t for t in repo.release_tags(service.name, service.tag_pattern) if t.tagged_at <= at]
    on_branch = {c.sha for c in commits}
    off_branch = sorted({t.sha for t in tags if t.tagged_at >= since} - on_branch)
    side = repo.history_off_branch(off_branch, service.branch, since=since, until=at)
    return metrics_from(commits, tags, side=side, since=since, at=at, settings=settings)


def metrics_from(
    commits: Sequence[Commit],
    tags: Sequence[ReleaseTag],
    *,
    side: Sequence[Commit] = (),
    since: datetime,
    at: datetime,
    settings: ClassifierSettings,
) -> HistoryMetrics:
    """The figures from already-read history (pure): `commits` are the release branch's
    in [since, at], `tags` the service's release tags up to `at`, `side` the commits of
    the look-back reachable from release tags but not from the branch."""
    weeks = settings.lookback_days / 7
    authors = {c.author_email.lower() or c.author_name for c in commits}
    half = since + (at - since) / 2
    older = sum(1 for c in commits if c.committed_at < half)
    recent = len(commits) - older
    trend_ratio = round(recent / older, 2) if older else None
    trend: Trend = "unknown"
    if trend_ratio is not None:
        trend = "rising" if trend_ratio > 1.25 else "falling" if trend_ratio < 0.8 else "steady"
    elif recent:
        trend = "rising"

    # Releases: those tagged in the look-back, plus the one just before it (for intervals).
    by_date = sorted(tags, key=lambda t: (t.tagged_at, t.version, t.name))
    before = [t for t in by_date if t.tagged_at < since]
    in_window = [t for t in by_date if t.tagged_at >= since]
    series = before[-1:] + in_window
    intervals = [_days(b.tagged_at - a.tagged_at) for a, b in itertools.pairwise(series)]

    # Which release shipped each commit: the earliest tag (by date) that contains it. Walk
    # the parents from each tag in date order; a commit already claimed was claimed by an
    # earlier tag, and so were its ancestors, so each commit is visited once.
    graph = {c.sha: c for c in itertools.chain(commits, side)}
    shipped_by: dict[str, ReleaseTag] = {}
    for tag in by_date:
        stack = [tag.sha]
        while stack:
            sha = stack.pop()
            if sha in shipped_by or sha not in graph:
                continue
            shipped_by[sha] = tag
            stack.extend(graph[sha].parents)
    lead_days = [
        max(0.0, _days(shipped_by[c.sha].tagged_at - c.committed_at))
        for c in commits
        if c.sha in shipped_by
    ]
    waiting_days = [_days(at - c.committed_at) for c in commits if c.sha not in shipped_by]
    ships: dict[str, list[Commit]] = {}
    for c in graph.values():
        if c.sha in shipped_by:
            ships.setdefault(shipped_by[c.sha].name, []).append(c)

    # Change failure: a release whose next release ships a revert or a hotfix.
    failed = sum(
        1
        for _, later in itertools.pairwise(series)
        if _is_hotfix_tag(later) or any(is_fix_signal(c) for c in ships.get(later.name, []))
    )
    rated = len(series) - 1
    demand_measured = len(commits) >= settings.min_commits
    cost_measured = demand_measured and len(series) >= settings.min_releases
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
        unreleased_commits=len(waiting_days),
        median_unreleased_age_days=_median(waiting_days) if cost_measured else None,
        median_release_interval_days=_median(intervals) if cost_measured else None,
        days_since_last_release=round(_days(at - by_date[-1].tagged_at), 2) if by_date else None,
        rated_releases=rated if cost_measured else 0,
        failed_releases=failed if cost_measured else 0,
        change_failure_rate=round(failed / rated, 2) if cost_measured and rated else None,
        demand_measured=demand_measured,
        cost_measured=cost_measured,
    )


# --- classifying --------------------------------------------------------------------------


def _x(value: float, threshold: float) -> float:
    return min(1.0, value / (2 * threshold))


def _level(score: float, threshold: float) -> Level:
    return Level.HIGH if score >= threshold else Level.LOW


def _above(value: float, threshold: float) -> str:
    return "above" if value > threshold else "within"


def _demand(m: HistoryMetrics, s: ClassifierSettings, reasons: list[str]) -> float:
    if not m.demand_measured:
        reasons.append(
            f"demand: too little history to measure: {m.commits} commit(s) in the "
            f"{m.lookback_days}-day look-back, fewer than the {s.min_commits} needed; "
            "demand is treated as low, not measured"
        )
        return 0.0
    trend_value = {"rising": 1.0, "steady": 0.5, "falling": 0.0, "unknown": 0.5}[m.trend]
    trend = m.trend + (
        f", recent/older half {m.trend_ratio:g}" if m.trend_ratio is not None else ""
    )
    reasons.append(
        f"demand: {m.commits} commits in {m.lookback_days} days, {m.commits_per_week:g} a "
        f"week (high from {s.demand_high_commits_per_week:g}), by {m.distinct_authors} "
        f"author(s) (high from {s.demand_high_authors}); the trend is {trend}"
    )
    return (
        0.6 * _x(m.commits_per_week, s.demand_high_commits_per_week)
        + 0.3 * _x(m.distinct_authors, s.demand_high_authors)
        + 0.1 * trend_value
    )


def _measured_cost(
    m: HistoryMetrics, s: ClassifierSettings, reasons: list[str]
) -> list[tuple[float, float]]:
    """The measured (weight, signal) pairs of cost of change, with their reasons."""
    if not m.cost_measured:
        reasons.append(
            f"cost: too little release history to measure: {m.releases} release tag(s) and "
            f"{m.commits} commit(s) in the {m.lookback_days}-day look-back (needs "
            f"{s.min_releases} releases, counting the last one before the look-back, and "
            f"{s.min_commits} commits); judged on the declared facts only"
        )
        return []
    lead_limit = s.cost_high_lead_time_days
    signals: list[tuple[float, float]] = []
    lead, waiting = m.median_lead_time_days, m.median_unreleased_age_days
    if lead is not None:
        meaning = "changes wait long to ship" if lead > lead_limit else "changes ship quickly"
        reasons.append(
            f"cost: median lead time {lead:.1f} days (commit to release tag, over "
            f"{m.commits - m.unreleased_commits} shipped commits) is {_above(lead, lead_limit)} "
            f"the {lead_limit:g}-day threshold: {meaning}"
        )
    if waiting is not None:
        longer = waiting > (lead or 0.0)
        reasons.append(
            f"cost: {m.unreleased_commits} change(s) not released yet have waited a median "
            f"{waiting:.1f} days so far"
            + (
                f", {_above(waiting, lead_limit)} the {lead_limit:g}-day threshold: "
                "counted as lead time"
                if longer
                else ""
            )
        )
    signals.append((0.6, _x(max(lead or 0.0, waiting or 0.0), lead_limit)))
    interval, interval_limit = m.median_release_interval_days, s.cost_high_release_interval_days
    if interval is not None:
        meaning = "releases are rare" if interval > interval_limit else "releases are frequent"
        reasons.append(
            f"cost: a release every {interval:.1f} days (median interval; {m.releases} release(s) "
            f"in the look-back) is {_above(interval, interval_limit)} the "
            f"{interval_limit:g}-day threshold: {meaning}"
        )
        signals.append((0.5, _x(interval, interval_limit)))
    cfr = m.change_failure_rate
    if cfr is not None:
        reasons.append(
            f"cost: {m.failed_releases} of {m.rated_releases} release(s) were followed by a "
            f"revert or hotfix (change failure rate {cfr:.0%}), "
            f"{_above(cfr, s.cost_high_failure_rate)} the {s.cost_high_failure_rate:.0%} threshold"
        )
        signals.append((0.5, _x(cfr, s.cost_high_failure_rate)))
    return signals


def _declared_cost(
    service: Service, s: ClassifierSettings, reasons: list[str]
) -> list[tuple[float, float]]:
    """The declared (weight, signal) pairs of cost of change, with their reasons."""
    signals: list[tuple[float, float]] = []
    runtime = service.runtime.lower()
    heritage_runtime = next((r for r in s.heritage_runtimes if r.lower() in runtime), None)
    if heritage_runtime:
        signals.append((0.6, 1.0))
        reasons.append(
            f"declared: runtime {service.runtime!r} is a heritage runtime "
            f"(matches {heritage_runtime!r} in classifier.heritage_runtimes)"
        )
    if not service.tests_automated:
        signals.append((0.3, 1.0))
        reasons.append("declared: tests are not automated (tests_automated: false)")
    if not service.deploys_automated:
        signals.append((0.3, 1.0))
        reasons.append("declared: deploys need manual work (deploys_automated: false)")
    if not signals:
        reasons.append(
            f"declared: runtime {service.runtime!r}, automated tests and deploys: nothing "
            "declared raises the cost of change"
        )
    return signals


def classify(
    service: Service, metrics: HistoryMetrics, settings: ClassifierSettings, *, at: datetime
) -> Classification:
    """The verdict and its reasons, from the metrics and the declared facts (pure)."""
    _require_aware(at)
    reasons: list[str] = []
    s = settings
    demand = _demand(metrics, s, reasons)
    signals = _measured_cost(metrics, s, reasons) + _declared_cost(service, s, reasons)
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
        f"verdict: cost of change {cost_score.level} ({cost_score.score:.2f}; high from "
        f"{s.cost_high_score:.2f}) → {measured_model.value}; demand for change "
        f"{demand_score.level} ({demand_score.score:.2f}; high from {s.demand_high_score:.2f})"
    )
    forced = service.forced_model
    model = forced or measured_model
    if forced is not None:
        reasons.append(
            f"forced: operating_model is set to {forced.value} in the catalog "
            f"(reason: {service.reason}); "
            + (
                "the measurement agrees"
                if forced is measured_model
                else f"the measurement alone would say {measured_model.value}"
            )
        )
    candidate = model is OperatingModel.HERITAGE and demand_score.level is Level.HIGH
    if candidate:
        reasons.append(
            f"migration candidate: a heritage service under high demand for change "
            f"({metrics.commits_per_week:g} commits a week by {metrics.distinct_authors} "
            "author(s)); the heritage model cannot take that demand: plan a migration pathway"
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
    """`measure` then `classify`."""
    return classify(service, measure(repo, service, at=at, settings=settings), settings, at=at)
