"""End-to-end fixtures: one real Prefect server and one `dualop serve` per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import E2EStack

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
    from prefect.context import refresh_global_settings_context

    from dualop.stack import free_port, prefect_env

    root = tmp_path_factory.mktemp("e2e")
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(E2E_WINDOWS)
    (config / "approvers.yaml").write_text(E2E_APPROVERS)
    data = root / "data"
    port = free_port()
    env = prefect_env(data, port=port, poll_seconds=1.0)
    env.update(
        DUALOP_CONFIG_DIR=str(config),
        DUALOP_DEPLOY_RECORD=str(data / "deploy-record.jsonl"),
        DUALOP_LOG_FORMAT="json",
        HOME=str(root / "home"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="test@dualop.invalid",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="test@dualop.invalid",
    )
    (root / "home").mkdir()
    Path(env["PREFECT_HOME"]).mkdir(parents=True)
    stack = E2EStack(root, config, data, env, env["PREFECT_API_URL"])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "DUALOP_"))})
    refresh_global_settings_context()  # Prefect read its settings when first imported
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_global_settings_context()
