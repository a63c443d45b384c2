"""Deployers: how a built release becomes the live one, and how it goes back.

One protocol, `Deployer`, and one implementation per `deploy.kind` of the catalog:
`LocalDeployer` (release folders and a `current` link) and `CommandDeployer` (the
service's own commands). `deployer_for(service, ...)` picks the one a service asks for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import assert_never

from dualop.catalog import CommandDeploy, LocalDeploy, Service
from dualop.deploy.base import Deployer, Release, UnsafeReleaseName
from dualop.deploy.command import CommandDeployer
from dualop.deploy.local import LocalDeployer
from dualop.deploy.recording import RecordingDeployer, overlaps

__all__ = [
    "RECORD_ENV",
    "CommandDeployer",
    "Deployer",
    "LocalDeployer",
    "RecordingDeployer",
    "Release",
    "UnsafeReleaseName",
    "deployer_for",
    "overlaps",
]

RECORD_ENV = "DUALOP_DEPLOY_RECORD"


def deployer_for(service: Service, *, deploy_root: Path, keep: int) -> Deployer:
    """The deployer `service.deploy` asks for, rooted at `deploy_root`.

    With `DUALOP_DEPLOY_RECORD=/path/record.jsonl` set, it is wrapped in a
    `RecordingDeployer` that appends each deploy's start and end to that file (tests use it
    to prove deploys of a service never overlap).
    """
    spec = service.deploy
    inner: Deployer
    match spec:
        case LocalDeploy():
            inner = LocalDeployer(deploy_root, keep=keep)
        case CommandDeploy():
            inner = CommandDeployer(spec, state_root=deploy_root)
        case _:
            assert_never(spec)
    record = os.environ.get(RECORD_ENV)
    return RecordingDeployer(inner, Path(record)) if record else inner
