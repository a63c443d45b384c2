"""The demo `make up` creates: its repositories classify as the README says, and the demo
ops inbox records hand-overs."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dualop.catalog import OperatingModel, load_catalog
from dualop.classify import classify_service
from dualop.demo import ensure_demo, ops_inbox_app
from dualop.git import GitRepo
from dualop.settings import ClassifierSettings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_demo_services_classify_as_documented(tmp_path: Path) -> None:
    """storefront-web is digital; ledger-core is heritage (not a migration candidate);
    a second start creates nothing and keeps the repositories."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    created = ensure_demo(config, NOW)
    assert sorted(p.name for p in created) == ["ledger-core", "storefront-web"]
    catalog = load_catalog(config)
    verdicts = {
        name: classify_service(
            catalog.services[name],
            GitRepo.open(tmp_path / "demo" / name),
            at=NOW,
            settings=ClassifierSettings(),
        )
        for name in ("storefront-web", "ledger-core")
    }
    assert verdicts["storefront-web"].model is OperatingModel.DIGITAL
    assert verdicts["ledger-core"].model is OperatingModel.HERITAGE
    assert not verdicts["ledger-core"].migration_candidate
    assert ensure_demo(config, NOW) == []


def test_ops_inbox_records_each_notification(tmp_path: Path) -> None:
    out = tmp_path / "ops-inbox.jsonl"

    async def send() -> list[int]:
        transport = httpx.ASGITransport(app=ops_inbox_app(out))
        async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as client:
            good = await client.post("/", json={"title": "ledger-core released", "body": "b"})
            bad = await client.post("/", content=b"not json")
            return [good.status_code, bad.status_code]

    assert asyncio.run(send()) == [200, 400]
    [line] = out.read_text().splitlines()
    assert json.loads(line)["notification"]["title"] == "ledger-core released"
