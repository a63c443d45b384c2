"""DORA metrics per service and per operating model, computed from the audit log.

Definitions (from `release.outcome` entries, both pipelines):

- **deployment frequency**: releases that went live (`released`) per week in the period;
- **lead time for changes**: median time from the first commit of a release to live;
- **change failure rate**: failed changes / changes that reached production, where a change
  failed when it was rolled back, or when the next release of the service is a hotfix (it
  ships a revert or a commit whose subject says hotfix);
- **time to restore**: for each failed change, the time until the next successful release
  of the service (a rolled-back release is back on the previous version at once, but the
  fix is what restores the service's ability to change); median;
- heritage only: median **wait for approvals** (gate opened → last accepted approval) and
  **wait for a window** (approved → the window pre-flight that let the steps start).

Next to each service: the classifier's latest verdict (model, migration candidate), which
is what tells an organisation whether a heritage service has become a migration candidate.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dualop.audit import AuditEntry

__all__ = ["ModelMetrics", "Report", "ServiceMetrics", "dora_report", "prometheus_text"]


@dataclass
class ServiceMetrics:
    service: str
    model: str
    migration_candidate: bool | None
    releases: int = 0
    failures: int = 0
    deployment_frequency_per_week: float = 0.0
    lead_time_median_h: float | None = None
    change_failure_rate: float | None = None
    time_to_restore_median_h: float | None = None
    approval_wait_median_h: float | None = None
    window_wait_median_h: float | None = None


@dataclass
class ModelMetrics:
    model: str
    services: int = 0
    releases: int = 0
    failures: int = 0
    deployment_frequency_per_week: float = 0.0
    lead_time_median_h: float | None = None
    change_failure_rate: float | None = None
    time_to_restore_median_h: float | None = None


@dataclass
class Report:
    since: datetime
    until: datetime
    services: list[ServiceMetrics] = field(default_factory=list)
    models: list[ModelMetrics] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "services": [asdict(s) for s in self.services],
            "models": [asdict(m) for m in self.models],
        }


def _hours(values: list[float]) -> float | None:
    return round(statistics.median(values) / 3600, 2) if values else None


def _is_hotfix(entry: AuditEntry) -> bool:
    return bool(entry.data.get("hotfix"))


@dataclass
class _Acc:
    model: str = "unknown"
    live: list[AuditEntry] = field(default_factory=list)
    attempts: list[AuditEntry] = field(default_factory=list)
    failed_at: list[datetime] = field(default_factory=list)
    restore_s: list[float] = field(default_factory=list)
    approval_s: list[float] = field(default_factory=list)
    window_s: list[float] = field(default_factory=list)


def _accumulate(entries: list[AuditEntry], since: datetime) -> dict[str, _Acc]:
    by_service: dict[str, _Acc] = defaultdict(_Acc)
    for e in entries:
        if e.kind != "release.outcome" or e.service is None or e.at < since:
            continue
        acc = by_service[e.service]
        acc.model = str(e.data.get("model", acc.model))
        outcome = e.data.get("outcome")
        if outcome in {"released", "rolled-back"}:
            acc.attempts.append(e)
        if outcome == "released":
            if acc.failed_at:
                acc.restore_s.extend((e.at - f).total_seconds() for f in acc.failed_at)
                acc.failed_at.clear()
            if _is_hotfix(e) and acc.live:  # the release before this hotfix failed
                acc.restore_s.append((e.at - acc.live[-1].at).total_seconds())
            acc.live.append(e)
        elif outcome == "rolled-back":
            acc.failed_at.append(e.at)
    return by_service


def _waits(entries: list[AuditEntry], by_service: dict[str, _Acc], since: datetime) -> None:
    requested: dict[str, AuditEntry] = {}
    approved: dict[str, datetime] = {}
    for e in entries:
        if e.at < since or e.service is None or e.run_id is None:
            continue
        if e.kind == "approval.requested":
            requested.setdefault(e.run_id, e)
        elif e.kind == "approval.decision" and e.data.get("decision") == "approve":
            approved[e.run_id] = e.at
        elif e.kind == "preflight" and e.data.get("stage") == "window" and e.data.get("ok"):
            start = requested.get(e.run_id)
            done = approved.get(e.run_id)
            if start is not None and done is not None:
                acc = by_service[e.service]
                acc.approval_s.append((done - start.at).total_seconds())
                acc.window_s.append(max(0.0, (e.at - done).total_seconds()))


def dora_report(entries: Iterable[AuditEntry], *, since: datetime, until: datetime) -> Report:
    """The report for the period [since, until] (see the module docstring)."""
    ordered = sorted(entries, key=lambda e: e.seq)
    by_service = _accumulate(ordered, since)
    _waits(ordered, by_service, since)
    verdicts: dict[str, AuditEntry] = {}
    for e in ordered:
        if e.kind == "classification" and e.service:
            verdicts[e.service] = e
    weeks = max((until - since) / timedelta(weeks=1), 1 / 7)
    report = Report(since, until)
    per_model: dict[str, list[tuple[ServiceMetrics, _Acc]]] = defaultdict(list)
    for name in sorted(set(by_service) | set(verdicts)):
        acc = by_service[name]
        verdict = verdicts.get(name)
        model = (
            acc.model
            if acc.model != "unknown"
            else str(verdict.data.get("model", "unknown") if verdict else "unknown")
        )
        failures = sum(1 for a in acc.attempts if a.data.get("outcome") == "rolled-back") + sum(
            1 for a in acc.live[1:] if _is_hotfix(a)
        )
        lead = [float(a.data["lead_time_s"]) for a in acc.live if a.data.get("lead_time_s")]
        metrics = ServiceMetrics(
            service=name,
            model=model,
            migration_candidate=bool(verdict.data.get("migration_candidate")) if verdict else None,
            releases=len(acc.live),
            failures=failures,
            deployment_frequency_per_week=round(len(acc.live) / weeks, 2),
            lead_time_median_h=_hours(lead),
            change_failure_rate=round(failures / len(acc.attempts), 3) if acc.attempts else None,
            time_to_restore_median_h=_hours(acc.restore_s),
            approval_wait_median_h=_hours(acc.approval_s),
            window_wait_median_h=_hours(acc.window_s),
        )
        report.services.append(metrics)
        per_model[model].append((metrics, acc))
    for model, members in sorted(per_model.items()):
        attempts = sum(len(acc.attempts) for _, acc in members)
        failures = sum(m.failures for m, _ in members)
        releases = sum(m.releases for m, _ in members)
        lead = [
            float(a.data["lead_time_s"])
            for _, acc in members
            for a in acc.live
            if a.data.get("lead_time_s")
        ]
        report.models.append(
            ModelMetrics(
                model=model,
                services=len(members),
                releases=releases,
                failures=failures,
                deployment_frequency_per_week=round(releases / weeks, 2),
                lead_time_median_h=_hours(lead),
                change_failure_rate=round(failures / attempts, 3) if attempts else None,
                time_to_restore_median_h=_hours([s for _, acc in members for s in acc.restore_s]),
            )
        )
    return report


def prometheus_text(report: Report) -> bytes:
    """The report in Prometheus' text format (prometheus_client, a Prefect dependency)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    gauges = {
        "deployment_frequency_per_week": "Releases that went live per week",
        "lead_time_median_h": "Median hours from a release's first commit to live",
        "change_failure_rate": "Share of releases rolled back or followed by a hotfix",
        "time_to_restore_median_h": "Median hours from a failed release to the next good one",
        "approval_wait_median_h": "Median hours a heritage change waited for approvals",
        "window_wait_median_h": "Median hours a heritage change waited for its window",
    }
    made = {
        key: Gauge(f"dualop_{key}", help_, ["service", "model"], registry=registry)
        for key, help_ in gauges.items()
    }
    candidate = Gauge(
        "dualop_migration_candidate",
        "1 when the classifier flags a heritage service under high demand",
        ["service", "model"],
        registry=registry,
    )
    for s in report.services:
        for key, gauge in made.items():
            value = getattr(s, key)
            if value is not None:
                gauge.labels(s.service, s.model).set(value)
        if s.migration_candidate is not None:
            candidate.labels(s.service, s.model).set(1 if s.migration_candidate else 0)
    return bytes(generate_latest(registry))
