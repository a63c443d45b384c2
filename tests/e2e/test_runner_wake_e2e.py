"""`dualop serve`'s wake-up against the session's real Prefect server: with the runner's
poll an hour apart, a new run still starts at once, because the server's event stream
announced it (dualop/runner.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prefect import get_client
from prefect.deployments import run_deployment

from dualop.stack import spawn, wait_until_healthy
from tests.e2e.helpers import E2EStack, wait_for
from tests.support import stop_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0

PROBE = """\
from prefect import flow, task
from prefect.types.entrypoint import EntrypointType

from dualop.runner import serve


@task(name="probe-task")
def probe_task() -> str:
    return "ran"


@flow(name="wake-probe")
def wake_probe() -> str:
    return probe_task()


def main() -> None:
    serve(
        [wake_probe.to_deployment("wake-probe", entrypoint_type=EntrypointType.MODULE_PATH)],
        limit=4,
        poll_seconds={poll},
    )
"""


def test_a_new_run_starts_on_the_servers_announcement_not_the_next_poll(
    e2e: E2EStack, tmp_path: Path
) -> None:
    (tmp_path / "wake_probe_flows.py").write_text(PROBE.format(poll=HOUR))
    serving = spawn(
        "serve wake-probe",
        [sys.executable, "-c", "import wake_probe_flows; wake_probe_flows.main()"],
        env=dict(e2e.env, PYTHONPATH=f"{tmp_path}:{REPO_ROOT}"),
        log_path=tmp_path / "serve.log",
        cwd=tmp_path,
    )
    try:
        name = "wake-probe/wake-probe"
        wait_until_healthy(f"{e2e.api_url}/deployments/name/{name}", timeout=60, process=serving)
        # The runner polls once as it starts, then not for an hour: wait for that poll.
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while client.read_deployment_by_name(name).last_polled is None:
                assert time.monotonic() < deadline, "the runner never polled"
                assert serving.alive(), (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.2)
        # No wait for the event stream: a subscriber is sent the last minute's events
        # when it connects.
        for _ in range(3):
            run = run_deployment(name, timeout=0)
            done = wait_for(run.id, timeout=60)
            assert done.state is not None and done.state.type.value == "COMPLETED", (
                tmp_path / "serve.log"
            ).read_text()[-3000:]
    finally:
        stop_tree(serving)
