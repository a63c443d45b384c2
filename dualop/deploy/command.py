"""The command deployer: the service's own deploy and rollback argv (kubectl, helm, ansible…).

The release is described to the command in environment variables:

    DUALOP_SERVICE            the service's name
    DUALOP_VERSION            the version being deployed (or rolled back from)
    DUALOP_COMMIT             its commit
    DUALOP_RELEASE_DIR        the checked-out, built tree (also the working folder)
    DUALOP_PREVIOUS_VERSION   the version live before ("" when none); for a rollback,
                              the version to go back to

Output is streamed line by line; a non-zero exit or the timeout is a `DeployError` that
keeps the last lines. The version the commands made live is tracked in
`<state_root>/<service>/command-deploy.json`, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from dualop.catalog import CommandDeploy
from dualop.commands import run_command
from dualop.deploy.base import LineSink, Release, check_component, write_json_atomic
from dualop.exceptions import CommandFailed, DeployError

__all__ = ["STATE_FILE", "CommandDeployer"]

log = structlog.get_logger(__name__)

STATE_FILE = "command-deploy.json"
HISTORY_LIMIT = 100


class CommandDeployer:
    """Runs `spec.deploy` / `spec.rollback` and remembers which version they made live."""

    def __init__(self, spec: CommandDeploy, *, state_root: Path) -> None:
        self.spec = spec
        self.state_root = state_root

    def __repr__(self) -> str:
        return f"CommandDeployer(deploy={self.spec.deploy!r}, state_root={str(self.state_root)!r})"

    def deploy(self, release: Release, *, on_line: LineSink | None = None) -> None:
        service = check_component("service", release.service)
        version = check_component("version", release.version)
        history = self._history(service)
        live = history[-1] if history else None
        previous = live if live != version else (history[-2] if len(history) > 1 else None)
        previous = previous or release.previous_version
        self._run("deploy", self.spec.deploy, release, previous, on_line)
        if live != version:
            history.append(version)
        self._save(service, history)
        log.info("dualop.deploy.switched", service=service, version=version, previous=previous)

    def rollback(self, release: Release, *, on_line: LineSink | None = None) -> str | None:
        service = check_component("service", release.service)
        check_component("version", release.version)
        history = self._history(service)
        if history and history[-1] == release.version:
            previous = history[-2] if len(history) > 1 else None
            remaining = history[:-1]
        else:
            # The deploy command failed part-way: what is out there is unknown, so the rollback
            # command runs anyway and aims at what was live before (or what the caller says).
            previous = history[-1] if history else release.previous_version
            remaining = history
        self._run("rollback", self.spec.rollback, release, previous, on_line)
        self._save(service, remaining)
        log.info("dualop.deploy.rolled_back", service=service, version=release.version, to=previous)
        return previous

    def current_version(self, service: str) -> str | None:
        history = self._history(check_component("service", service))
        return history[-1] if history else None

    def live_dir(self, service: str) -> Path | None:
        check_component("service", service)
        return None

    # --- helpers --------------------------------------------------------------------------

    def _run(
        self,
        action: str,
        argv: list[str],
        release: Release,
        previous: str | None,
        on_line: LineSink | None,
    ) -> None:
        env = {
            "DUALOP_SERVICE": release.service,
            "DUALOP_VERSION": release.version,
            "DUALOP_COMMIT": release.commit,
            "DUALOP_RELEASE_DIR": str(release.source_dir),
            "DUALOP_PREVIOUS_VERSION": previous or "",
        }
        what = f"{action} of {release.service} {release.version}"
        try:
            run_command(
                argv,
                what=what,
                cwd=release.source_dir,
                env=env,
                timeout=self.spec.timeout.total_seconds(),
                on_line=on_line,
            )
        except CommandFailed as e:
            raise DeployError(
                f"{e}\nfix the service's {action} command (deploy.{action} in its catalog file) "
                "or what it talks to, then release again"
            ) from e

    def _state_file(self, service: str) -> Path:
        return self.state_root / service / STATE_FILE

    def _history(self, service: str) -> list[str]:
        try:
            data = json.loads(self._state_file(service).read_text(encoding="utf-8"))
            return [v for v in data.get("live", []) if isinstance(v, str)]
        except (OSError, ValueError, AttributeError):
            return []

    def _save(self, service: str, history: list[str]) -> None:
        path = self._state_file(service)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {"live": history[-HISTORY_LIMIT:]})
        except OSError as e:
            raise DeployError(
                f"{service}: the command succeeded but its state could not be written to {path}: "
                f"{e.strerror}; check that the deploy root is writable (DUALOP_DEPLOY_ROOT)"
            ) from e
