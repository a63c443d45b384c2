"""End-to-end fixtures: one real Prefect server and one `dualop serve` per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helpers import E2EStack
from tests.support import activated, stack_env

# --- one real Prefect server (and one `dualop serve`) per test session -------------------


E2E_WINDOWS = """
windows:
  always: {cron: "* * * * *", duration: 2h, timezone: UTC}
  never-fits: {cron: "* * * * *", duration: 90s, timezone: UTC}
  next-year: {cron: "0 2 1 1 *", duration: 1h, timezone: Europe/London}
"""
E2E_APPROVERS = "people: [alice, bob, carol, dave, test]\n"


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStack]:
    """Start `prefect server start` (SQLite) and `dualop serve` once for the session."""
    root = tmp_path_factory.mktemp("e2e")
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(E2E_WINDOWS)
    (config / "approvers.yaml").write_text(E2E_APPROVERS)
    data = root / "data"
    env = stack_env(root, config, DUALOP_DEPLOY_RECORD=str(data / "deploy-record.jsonl"))
    stack = E2EStack(root, config, data, env, env["PREFECT_API_URL"])
    with activated(env):
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
