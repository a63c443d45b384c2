"""DORA metrics from the audit log, per service and per operating model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from dualop.audit import FileAuditLog
from dualop.report import dora_report, prometheus_text

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def build(tmp_path: Path) -> FileAuditLog:
    log = FileAuditLog(tmp_path / "audit.jsonl")
    log.append("classification", service="web", at=T0, model="digital", migration_candidate=False)
    log.append(
        "classification", service="ledger", at=T0, model="heritage", migration_candidate=True
    )
    # web: released, rolled back, released (fix), released, hotfix → 5 attempts, 2 failures
    outcomes = [
        (T0 + 1 * H, "released", 2 * H, False),
        (T0 + 5 * H, "rolled-back", None, False),
        (T0 + 8 * H, "released", 4 * H, False),
        (T0 + 20 * H, "released", 1 * H, False),
        (T0 + 26 * H, "released", 1 * H, True),
    ]
    for at, outcome, lead, hotfix in outcomes:
        log.append(
            "release.outcome",
            service="web",
            at=at,
            model="digital",
            outcome=outcome,
            lead_time_s=lead.total_seconds() if lead else None,
            hotfix=hotfix,
        )
    # ledger: one migration; approvals took 10h, the window came 30h later
    run = "run-1"
    log.append("approval.requested", service="ledger", run_id=run, at=T0, required=2)
    log.append("approval.decision", service="ledger", run_id=run, at=T0 + 4 * H, decision="approve")
    log.append(
        "approval.decision", service="ledger", run_id=run, at=T0 + 10 * H, decision="approve"
    )
    log.append("preflight", service="ledger", run_id=run, at=T0 + 40 * H, stage="window", ok=True)
    log.append(
        "release.outcome",
        service="ledger",
        run_id=run,
        at=T0 + 41 * H,
        model="heritage",
        outcome="released",
        lead_time_s=(200 * H).total_seconds(),
        hotfix=False,
    )
    return log


class TestDora:
    def test_per_service_and_model(self, tmp_path: Path) -> None:
        """Frequency, lead time, failure rate, time to restore and heritage waits."""
        report = dora_report(build(tmp_path).entries(), since=T0, until=T0 + timedelta(days=7))
        (web,) = [s for s in report.services if s.service == "web"]
        assert web.releases == 4 and web.failures == 2
        assert web.deployment_frequency_per_week == 4.0
        assert web.lead_time_median_h == 1.5
        assert web.change_failure_rate == 0.4
        assert web.time_to_restore_median_h == 4.5  # (8h-5h)=3h and (26h-20h)=6h
        (ledger,) = [s for s in report.services if s.service == "ledger"]
        assert ledger.model == "heritage" and ledger.migration_candidate is True
        assert ledger.approval_wait_median_h == 10.0
        assert ledger.window_wait_median_h == 30.0
        assert {m.model: m.releases for m in report.models} == {"digital": 4, "heritage": 1}

    def test_period_filters_outcomes(self, tmp_path: Path) -> None:
        """Outcomes before `since` do not count."""
        report = dora_report(
            build(tmp_path).entries(), since=T0 + 9 * H, until=T0 + timedelta(days=7)
        )
        (web,) = [s for s in report.services if s.service == "web"]
        assert web.releases == 2

    def test_prometheus_text(self, tmp_path: Path) -> None:
        """The same figures in Prometheus' text format, labelled by service and model."""
        report = dora_report(build(tmp_path).entries(), since=T0, until=T0 + timedelta(days=7))
        text = prometheus_text(report).decode()
        assert 'dualop_change_failure_rate{model="digital",service="web"} 0.4' in text
        assert 'dualop_migration_candidate{model="heritage",service="ledger"} 1.0' in text


class TestMetricsEndpoint:
    """`GET /metrics` on the webhook receiver serves the same figures."""

    def get(self, tmp_path: Path, query: str) -> httpx.Response:
        from dualop.catalog import Catalog
        from dualop.settings import Settings
        from dualop.webhooks import create_app

        log = build(tmp_path)

        def no_catalog() -> Catalog:
            raise AssertionError("/metrics must not read the catalog")

        app = create_app(
            settings=Settings(data_dir=tmp_path),
            catalog=no_catalog,
            starter=None,  # type: ignore[arg-type]  # /metrics starts nothing
            audit=log,
            clock=lambda: T0 + timedelta(days=7),
        )

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
                return await client.get(f"/metrics{query}")

        return asyncio.run(call())

    def test_prometheus_figures(self, tmp_path: Path) -> None:
        answer = self.get(tmp_path, "")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert 'dualop_change_failure_rate{model="digital",service="web"} 0.4' in answer.text

    def test_period_is_a_query_parameter(self, tmp_path: Path) -> None:
        """`?days=1` ends at the clock: only the last day's (no) releases count."""
        assert 'service="web"} 0.4' not in self.get(tmp_path, "?days=1").text

    def test_bad_days_named(self, tmp_path: Path) -> None:
        answer = self.get(tmp_path, "?days=-3")
        assert answer.status_code == 400 and "days" in answer.json()["error"]
